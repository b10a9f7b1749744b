# Shared by the SIP test and benchmark scripts (sip-tests, sip-bench,
# kamailio-tests, kamailio-bench; sourced; needs ROOT, OUT, STAGE, BIN set):
# process tracking and cleanup, staging and building the proxy, a free port
# range, starting proxies, SIPp runs and statistics.

elapsed() { awk -v a="$(date +%s.%N)" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; }
pass() { printf 'PASS  %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; failed+=("$1"); }

# stop_within SECONDS PID [SIGNAL]: a stop that ends (scripts/lib/stop.sh).
. "$ROOT/scripts/lib/stop.sh"

pids=()

# Stops every process started here: SIGTERM, then SIGKILL for the stubborn.
# SIGKILL goes to each one's process group too: a Kamailio (start_kamailio)
# leads its own, and its workers would outlive a SIGKILL to the main process
# alone (a group that is gone or never was: no-op). The wait is for these
# processes only, each SIGKILLed by then: a bare `wait` would also wait for
# any other child, for as long as it runs.
cleanup() {
    local p
    trap - EXIT INT TERM
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for _ in $(seq 1 50); do
        local alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive -eq 0 ] && break
        sleep 0.1
    done
    for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
    [ ${#pids[@]} -eq 0 ] || wait "${pids[@]}" 2>/dev/null
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM

forget_pid() { # removes $1 from the cleanup list once it is reaped here
    local p keep=()
    for p in "${pids[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
    pids=("${keep[@]}")
}

# run_tracked PID: waits for a background job the trap can stop; its status.
run_tracked() {
    local rc
    pids+=("$1")
    wait "$1"
    rc=$?
    forget_pid "$1"
    return $rc
}

# stage_and_build: the library in $STAGE, the proxy in $BIN.
stage_and_build() {
    make install PREFIX="$STAGE" >"$OUT/make-install.log" 2>&1 || {
        tail -n 30 "$OUT/make-install.log"; echo "make install failed"; return 1; }
    export PKG_CONFIG_PATH=$STAGE/lib/pkgconfig
    make -s -C "$ROOT/c-examples/sip-proxy" BUILD="$BIN" &&
        (cd "$ROOT" && cargo build --release --quiet --bin chordsip) # for wait_ring
}

# client_key_file: the path of the client credential (`client_key`) every
# node of these tests is started with, so that `chordsip ring` may ask them
# over UDP; made on first use.
client_key_file() {
    local f=$OUT/client.key
    [ -s "$f" ] || { umask 077; echo "sip-tests-client-credential" >"$f"; }
    echo "$f"
}

# overlay_key_file: the overlay key the servers of these tests share (a
# stranger without it cannot join their ring); made on first use.
overlay_key_file() {
    local f=$OUT/overlay.key
    [ -s "$f" ] || (umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$f")
    echo "$f"
}

# server_overlay_key: the overlay key file a server started here gets:
# OVERLAY_KEY if set (set and empty: none, as in the benchmarks, whose
# documented numbers were measured without one), else overlay_key_file.
server_overlay_key() {
    if [ -n "${OVERLAY_KEY+set}" ]; then echo "$OVERLAY_KEY"; else overlay_key_file; fi
}

# wait_ring OVERLAY_PORT...: until every node knows its predecessor and both
# other nodes as successors (asked with `chordsip ring`), at most 10 s.
wait_ring() {
    local p t ok
    for _ in $(seq 1 100); do
        ok=1
        for p in "$@"; do
            t=$("$ROOT/target/release/chordsip" ring --via "127.0.0.1:$p" --timeout-ms 500 \
                --client-key-file "$(client_key_file)" 2>/dev/null) || ok=0
            grep -q '^predecessor\[0\]' <<<"$t" && grep -q "^successor\[$(($# - 2))\]" <<<"$t" || ok=0
        done
        [ $ok -eq 1 ] && return 0
        sleep 0.1
    done
    # (a server whose overlay node could not bind keeps retrying: its log says why)
    port_taken "$OUT"/proxy-*.err "$OUT"/*/kamailio.log && ports_lost "an overlay node"
    echo "the overlay of ports $* did not form one ring within 10 s"
    return 1
}

# node_counter OVERLAY_PORT NAME: a counter of the node at OVERLAY_PORT
# (`chordsip stats`), or "?" when it does not answer.
node_counter() {
    "$ROOT/target/release/chordsip" stats --via "127.0.0.1:$1" --timeout-ms 1000 \
        --client-key-file "$(client_key_file)" 2>/dev/null |
        awk -v n="$2" '$1 == n { v = $2 } END { print (v != "") ? v : "?" }'
}

# ring_lists OVERLAY_PORT PEER_PORT: whether the node at OVERLAY_PORT names a
# peer on 127.0.0.1:PEER_PORT among its successors, predecessors or fingers.
ring_lists() {
    "$ROOT/target/release/chordsip" ring --via "127.0.0.1:$1" --timeout-ms 1000 \
        --client-key-file "$(client_key_file)" 2>/dev/null | grep -q " 127\.0\.0\.1:$2\$"
}

ports_free() { # base: are base..base+29 free UDP ports on 127.0.0.1?
    python3 - "$1" <<'PY'
import socket, sys
base = int(sys.argv[1])
for p in range(base, base + 30):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
PY
}

# pick_ports: sets BASE to SIP_TEST_PORT_BASE or a free range of 30 ports
# (BASE..BASE+29: the scripts use offsets up to +25, hybrid-tests' five SIPp
# UACs), below the kernel's ephemeral range (whose ports any process may be
# handed by a bind to port 0 between our check and our bind). Bases are
# multiples of 100 from 10000 (1100 where the ephemeral range starts below
# 10300) up to at least 200 below the range, so every offset stays in the
# window.
# What remains: a process binding one of these ports explicitly (another
# run of these scripts, say) between ports_free and our servers' binds. The
# scripts derive every port from BASE at their start and bring servers up
# throughout (kamailio-tests' FZ at +4 late in the run), so the retry on
# EADDRINUSE restarts the whole script: a server or SIPp that could not
# bind makes it exit 75 (ports_lost), and scripts/test.sh runs such a
# suite again with a new range (no other failure is retried).
pick_ports() {
    BASE=${SIP_TEST_PORT_BASE:-}
    [ -n "$BASE" ] && return 0
    local ephemeral_low low=10000
    ephemeral_low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    [ "$ephemeral_low" -ge $((low + 300)) ] || low=1100
    local slots=$(( (ephemeral_low - low) / 100 - 1 ))
    [ "$slots" -gt 0 ] || { echo "no port range below the ephemeral range (from $ephemeral_low)"; return 1; }
    for _ in $(seq 1 50); do
        BASE=$((low + (RANDOM % slots) * 100))
        ports_free "$BASE" && return 0
    done
    echo "no free port range found"
    return 1
}

# port_taken FILE...: whether one of these logs says a bind found its port
# taken (EADDRINUSE: sip-proxy, the library's log, Kamailio, SIPp).
port_taken() {
    grep -qsE "Address already in use|errno = 98" "$@"
}

# sip_ports_free IP:PORT...: fails with the name of what holds the first UDP
# address that cannot be bound: on a machine with Debian's kamailio package,
# usually its kamailio.service on every address' 5060 (scripts/setup.sh
# masks the one it installs itself, but leaves an operator's alone).
sip_ports_free() {
    local a busy=()
    for a in "$@"; do
        python3 -c 'import socket, sys
ip, port = sys.argv[1].rsplit(":", 1)
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).bind((ip, int(port)))' "$a" 2>/dev/null ||
            busy+=("$a")
    done
    [ ${#busy[@]} -eq 0 ] && return 0
    echo "UDP ${busy[*]} cannot be bound; the port is held by:"
    ss -Hlunp "( sport = :${busy[0]##*:} )" 2>/dev/null | sed 's/^/    /'
    echo "    (Debian's kamailio.service? 'systemctl stop kamailio' for this run, or" \
        "'systemctl mask --now kamailio' on a test machine)"
    return 1
}

# ports_lost WHAT: a port checked free was taken before our server bound it;
# the run stops with exit 75 so that scripts/test.sh runs it again with a
# new port range (see pick_ports).
ports_lost() {
    echo "PORT TAKEN: $1 could not bind its port (EADDRINUSE); stopping with exit 75 for a run with other ports"
    exit 75
}

# writer_key FILE: a new writer key (`chordsip keygen`) for proxies that act as one registrar;
# its public half (what `trusted_writers` names) goes to FILE.pub.
writer_key() {
    rm -f "$1" && "$ROOT/target/release/chordsip" keygen --out "$1" 2>"$1.log" &&
        sed -n 's/^writer //p' "$1.log" >"$1.pub" && [ -s "$1.pub" ]
}

# start_proxy NAME BINARY SIP_PORT OVERLAY_PORT [BOOTSTRAP]: sets PID_NAME.
# Its overlay key: server_overlay_key.
# With WRITER_KEY set, the proxy signs with that writer key file; with TRUSTED set (public
# keys, comma-separated), it also routes to bindings written under those keys. It serves
# PROXY_DOMAINS (comma-separated) if set, else $DOMAIN; set and empty: no --domain (the
# proxy's default, every host name). With CREDS_KEY (and ADMIN_KEY) set it authenticates
# REGISTERs (NONCE_LIFETIME: seconds a nonce lives); without, it runs with --no-auth.
start_proxy() {
    local name=$1 bin=$2 sip=$3 ovl=$4 boot=${5:-}
    local domains=${PROXY_DOMAINS-${DOMAIN:-}}
    local args=(--listen "127.0.0.1:$sip" --overlay-listen "127.0.0.1:$ovl" --log=2
        --overlay-set "client_key_file=$(client_key_file)")
    local okey
    okey=$(server_overlay_key)
    [ -n "$okey" ] && args+=(--overlay-key-file "$okey")
    [ -n "$domains" ] && args+=(--domain "$domains")
    [ -n "$boot" ] && args+=(--bootstrap "$boot")
    [ -n "${WRITER_KEY:-}" ] && args+=(--writer-key-file "$WRITER_KEY")
    [ -n "${TRUSTED:-}" ] && args+=(--overlay-set "trusted_writers=$TRUSTED")
    # REGISTERs authenticated with the users ADMIN_KEY stored, when CREDS_KEY is set
    if [ -n "${CREDS_KEY:-}" ]; then
        args+=(--credentials-key-file "$CREDS_KEY" --credential-admins "$(cat "$ADMIN_KEY.pub")")
        [ -n "${NONCE_LIFETIME:-}" ] && args+=(--overlay-set "digest_nonce_lifetime_s=$NONCE_LIFETIME")
    else
        args+=(--no-auth)
    fi
    "$bin" "${args[@]}" >"$OUT/proxy-$name.out" 2>"$OUT/proxy-$name.err" &
    local pid=$!
    pids+=("$pid")
    printf -v "PID_$name" '%s' "$pid"
    for _ in $(seq 1 200); do
        if grep -q '^sip-proxy ready' "$OUT/proxy-$name.out" 2>/dev/null; then
            echo "proxy $name (pid $pid): $(sed -n 's/^sip-proxy ready: //p' "$OUT/proxy-$name.out")"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    port_taken "$OUT/proxy-$name.err" && ports_lost "proxy $name"
    echo "proxy $name did not come up:"; tail -n 20 "$OUT/proxy-$name.err"
    return 1
}

# stat_of FILE COLUMN: the column's value in the last line of a -trace_stat file.
stat_of() {
    awk -F';' -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
        { v = $c } END { print (c && v != "") ? v : "?" }' "$1"
}

# users_csv FILE FIRST LAST [PREFIX]: SIPp -inf users userFIRST..userLAST (PREFIX
# instead of "user" if given) at $DOMAIN.
users_csv() {
    { echo SEQUENTIAL; for i in $(seq "$2" "$3"); do printf '%s%04d;%s;\n' "${4:-user}" "$i" "$DOMAIN"; done; } >"$1"
}

# password_of USER: the test password of a provisioned user.
password_of() { printf 'pw-%s' "$1"; }

# auth_users FILE FIRST LAST [PREFIX]: users_csv whose third field is SIPp's
# [authentication ...] for the user (register-auth.xml), and FILE.txt the
# same users for `chordsip user add --from-file` (USER@DOMAIN PASSWORD).
auth_users() {
    local i u
    { echo SEQUENTIAL; for i in $(seq "$2" "$3"); do
        u=$(printf '%s%04d' "${4:-user}" "$i")
        printf '%s;%s;[authentication username=%s password=%s]\n' "$u" "$DOMAIN" "$u" "$(password_of "$u")"
    done; } >"$1"
    for i in $(seq "$2" "$3"); do
        u=$(printf '%s%04d' "${4:-user}" "$i")
        printf '%s@%s %s\n' "$u" "$DOMAIN" "$(password_of "$u")"
    done >"$1.txt"
}

# add_users FILE OVERLAY_PORT: an administrator stores the users of FILE
# (auth_users' FILE.txt) in the overlay through the node at OVERLAY_PORT,
# with ADMIN_KEY and CREDS_KEY.
add_users() {
    local okey
    okey=$(server_overlay_key)
    "$ROOT/target/release/chordsip" user add --from-file "$1" --bootstrap "127.0.0.1:$2" \
        --admin-key-file "$ADMIN_KEY" --credentials-key-file "$CREDS_KEY" \
        ${okey:+--key-file "$okey"} </dev/null
}

# run_sipp LABEL EXPECTED_SUCCESSFUL SIPP_ARGS...: one SIPp client run in
# $OUT/LABEL; passes when sipp exits 0 and exactly EXPECTED calls succeeded.
run_sipp() {
    local label=$1 want=$2 start rc; shift 2
    start=$(date +%s.%N)
    # in the background, so that a signal to this script reaches the trap
    # (which stops it) at once
    start_sipp "$label" "$@"
    run_tracked "$SIPP_PID"
    rc=$?
    sipp_verdict "$label" "$want" "$rc" "$start"
}

# start_sipp LABEL SIPP_ARGS...: the same SIPp run in the background (for a
# UAS with -m, which exits by itself once its calls are done); sets SIPP_PID.
start_sipp() {
    local label=$1; shift
    local dir=$OUT/$label
    mkdir -p "$dir"
    (cd "$dir" && exec timeout 150 sipp "$@" -nostdin -trace_stat -stf stat.csv -fd 1 -trace_err \
        -timeout 120s -timeout_error >sipp.log 2>&1) &
    SIPP_PID=$!
    pids+=("$SIPP_PID")
}

# wait_sipp LABEL EXPECTED_SUCCESSFUL PID START: waits for a start_sipp run; judged as run_sipp.
wait_sipp() {
    local rc
    run_tracked "$3"
    rc=$?
    sipp_verdict "$1" "$2" "$rc" "$4"
}

# sipp_verdict LABEL EXPECTED_SUCCESSFUL EXIT_STATUS START: PASS or FAIL for the run in $OUT/LABEL.
sipp_verdict() {
    local label=$1 want=$2 rc=$3 start=$4
    local dir=$OUT/$label
    local took ok bad retrans rate stray
    took=$(elapsed "$start")
    if [ ! -s "$dir/stat.csv" ]; then
        port_taken "$dir/sipp.log" && ports_lost "SIPp ($label)"
        fail "$label" "(sipp exit $rc, no statistics; log: $dir/sipp.log)"
        tail -n 15 "$dir/sipp.log" | sed 's/^/      /'
        return 1
    fi
    ok=$(stat_of "$dir/stat.csv" 'SuccessfulCall(C)')
    bad=$(stat_of "$dir/stat.csv" 'FailedCall(C)')
    retrans=$(stat_of "$dir/stat.csv" 'Retransmissions(C)')
    rate=$(stat_of "$dir/stat.csv" 'CallRate(C)')
    stray=$(awk -v a="$(stat_of "$dir/stat.csv" 'OutOfCallMsgs(C)')" \
        -v b="$(stat_of "$dir/stat.csv" 'DeadCallMsgs(C)')" 'BEGIN { print a + b }')
    local line
    line=$(printf '%-22s SuccessfulCall(C)=%s FailedCall(C)=%s Retransmissions(C)=%s OutOfCall+DeadCallMsgs(C)=%s CallRate(C)=%s, %s s' \
        "$label" "$ok" "$bad" "$retrans" "$stray" "$rate" "$took")
    # A message outside any call (a stray) can only be a late duplicate of an
    # answer to a retransmitted request: at most the three answers (100, 180,
    # 200) of each retransmission, this run's or an earlier run's on the same
    # port (SIPp's Call-IDs end in its pid: "N-PID@host"). Any other stray is
    # a misrouted message.
    local errlog own earlier=0
    errlog=$(ls "$dir"/*_errors.log 2>/dev/null | head -n 1)
    if [ -n "$errlog" ]; then
        own=$(basename "$errlog" | sed -n 's/.*_\([0-9]*\)_errors\.log$/\1/p')
        earlier=$(awk -v own="$own" '/can.t be mapped to a known SIPp call/ { f = 1; next }
            f && tolower($0) ~ /^(call-id|i)[ \t]*:/ {
                sub(/^[^:]*:[ \t]*/, ""); split($0, a, "@"); n = split(a[1], b, "-")
                if (b[n] != own) late++; f = 0 }
            END { print late + 0 }' "$errlog")
        stray=$(( ${stray:-0} - earlier ))
    fi
    if [ $rc -eq 0 ] && [ "$ok" = "$want" ] && [ "$bad" = 0 ] && [ "${stray:-0}" -le $((3 * ${retrans:-0})) ]; then
        pass "$line"
    elif [ $rc -eq 0 ] && [ "$ok" = "$want" ] && [ "$bad" = 0 ]; then
        fail "$label" "$line ($stray messages outside this run's calls, more than 3 per retransmission; see $dir)"
        return 1
    else
        fail "$label" "$line (sipp exit $rc, expected $want successful; see $dir)"
        cat "$dir"/*_errors.log 2>/dev/null | grep -v '^$' | head -n 8 | sed 's/^/      /'
        return 1
    fi
}

# start_uas PORT: the SIPp UAS (tests/sip/uas.xml) in $OUT/uas; sets UAS_PID.
start_uas() {
    mkdir -p "$OUT/uas"
    (cd "$OUT/uas" && exec sipp -sf "$ROOT/tests/sip/uas.xml" -i 127.0.0.1 -p "$1" -nostdin -trace_err \
        -trace_stat -stf stat.csv -fd 1 >sipp.log 2>&1) &
    UAS_PID=$!
    pids+=("$UAS_PID")
    sleep 0.5
    if ! kill -0 "$UAS_PID" 2>/dev/null; then
        port_taken "$OUT/uas/sipp.log" && ports_lost "the SIPp UAS"
        echo "the SIPp UAS did not start:"; tail "$OUT/uas/sipp.log"; return 1
    fi
}

# stop_uas EXPECTED [reordered-ok]: stops the UAS (SIGUSR1 makes SIPp finish its calls and
# write its statistics); passes when it answered exactly EXPECTED calls.
stop_uas() {
    kill -USR1 "$UAS_PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$UAS_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$UAS_PID" 2>/dev/null && kill -KILL "$UAS_PID"
    wait "$UAS_PID" 2>/dev/null
    forget_pid "$UAS_PID"
    local ok bad line
    ok=$(stat_of "$OUT/uas/stat.csv" 'SuccessfulCall(C)')
    bad=$(stat_of "$OUT/uas/stat.csv" 'FailedCall(C)')
    line="uas                    SuccessfulCall(C)=$ok FailedCall(C)=$bad (expected $1 answered)"
    if [ "$ok" = "$1" ] && [ "$bad" = 0 ]; then
        pass "$line"
    elif [ "${2:-}" = reordered-ok ]; then
        # A proxy with several workers may relay a call's ACK after its BYE
        # (both sent back to back by the caller): the UAS aborts that call on
        # the BYE, and the late ACK, unless SIPp still holds the aborted call
        # then, counts as a second failed call. Those and only those are
        # tolerated: every other call answered, every error one of the two.
        local log r late all
        log=$(cat "$OUT"/uas/*_errors.log 2>/dev/null)
        r=$(grep -o 'Aborting call on an unexpected BYE' <<<"$log" | wc -l)
        late=$(grep -o "while expecting 'INVITE' (index 0), received 'ACK " <<<"$log" | wc -l)
        all=$(grep -o 'Aborting call' <<<"$log" | wc -l)
        if [ $((ok + r)) = "$1" ] && [ "$late" -le "$r" ] && [ "$bad" = $((r + late)) ] &&
            [ "$all" = $((r + late)) ]; then
            pass "$line; $r calls had their ACK relayed after their BYE"
        else
            fail uas "$line"
        fi
    else
        fail uas "$line"
    fi
}

# pct FILE RTD P: the P-th percentile (nearest rank) of one RTD in a -trace_rtt file, in ms.
pct() {
    awk -F';' -v r="$2" '$3 == r { print $2 }' "$1" | sort -n |
        awk -v p="$3" '{ v[NR] = $1 } END { if (NR == 0) { print "?"; exit }
            k = int((p * NR + 99) / 100); if (k < 1) k = 1; print v[k] }'
}

# kamailio_ticks: the CPU time (user + system, clock ticks) used so far by the
# running Kamailio processes, threads included (the chordsip node's too): those
# of the sessions in CPU_SESSIONS (comma-separated; start_kamailio makes each
# server a session led by its main process), else every one.
kamailio_ticks() {
    local pids
    pids=$(pgrep -x kamailio ${CPU_SESSIONS:+-s "$CPU_SESSIONS"} | sed 's|.*|/proc/&/stat|')
    # (a process of the previous setup may exit meanwhile: cat's failure is no news)
    # shellcheck disable=SC2086 # one path per process
    { [ -n "$pids" ] && cat $pids 2>/dev/null || true; } | awk '{ t += $14 + $15 } END { print t + 0 }'
}

# bench LABEL RATE SCENARIO CSV TARGET [EXTRA...]: one benchmark run (SCENARIO
# a file of tests/sip, or an absolute path) of
# SECONDS_PER_RATE seconds from UAC_PORT; prints a line and returns 0 when
# the rate passes (<1% failed, SIPp kept >=95% of the rate, every p99 < 500 ms).
# With Kamailio running, the line gives its CPU per call (kamailio_ticks).
bench() {
    local label=$1 rate=$2 scen=$3 csv=$4 target=$5; shift 5
    local dir=$OUT/$label-$rate m=$((rate * SECONDS_PER_RATE)) ticks0
    [[ $scen == /* ]] || scen=$SIP/$scen
    mkdir -p "$dir"
    ticks0=$(kamailio_ticks)
    (cd "$dir" && exec timeout $((SECONDS_PER_RATE + 90)) sipp -sf "$scen" -inf "$csv" "$@" \
        -m "$m" -r "$rate" -i 127.0.0.1 -p "$UAC_PORT" -nostdin -trace_stat -stf stat.csv -fd 1 \
        -trace_rtt -rtt_freq 50 -timeout $((SECONDS_PER_RATE + 60))s "$target" >sipp.log 2>&1) &
    run_tracked $!
    local ok bad retrans achieved rtt line worst=0 p99
    ok=$(stat_of "$dir/stat.csv" 'SuccessfulCall(C)')
    bad=$(stat_of "$dir/stat.csv" 'FailedCall(C)')
    retrans=$(stat_of "$dir/stat.csv" 'Retransmissions(C)')
    achieved=$(stat_of "$dir/stat.csv" 'CallRate(C)')
    rtt=$(ls "$dir"/*_rtt.csv 2>/dev/null | head -1)
    line=$(printf '%-9s rate %5d/s: %6s ok %5s failed (%s retransmissions), SIPp rate %8s/s' \
        "$label" "$rate" "$ok" "$bad" "$retrans" "$achieved")
    local rtd
    for rtd in reg setup bye; do
        if [ -n "$rtt" ] && grep -q ";$rtd\$" "$rtt"; then
            p99=$(pct "$rtt" "$rtd" 99)
            line+=$(printf ', %s p50 %s ms p99 %s ms' "$rtd" "$(pct "$rtt" "$rtd" 50)" "$p99")
            worst=$(awk -v a="$worst" -v b="$p99" 'BEGIN { print (b + 0 > a + 0) ? b : a }')
        fi
    done
    # Kamailio's CPU per call (a REGISTER, or INVITE to BYE), when one runs.
    if [ "$ticks0" -gt 0 ] && [ "${ok:-0}" -gt 0 ] 2>/dev/null; then
        line+=$(awk -v t="$(($(kamailio_ticks) - ticks0))" -v hz="$(getconf CLK_TCK)" -v n="$ok" \
            'BEGIN { printf ", Kamailio CPU %d us/call", t * 1e6 / hz / n }')
    fi
    echo "$line"
    awk -v ok="$ok" -v bad="$bad" -v r="$rate" -v a="$achieved" -v w="$worst" \
        'BEGIN { t = ok + bad; exit !(t > 0 && bad / t < 0.01 && a >= 0.95 * r && w < 500) }'
}

# register_series LABEL TARGETS RATE...: REGISTERs of fresh users at TARGETS
# (contacts at the UAS), rate by rate until one fails; sets BEST_REG.
# TARGETS is one HOST:PORT, or several separated by commas: then the users
# take turns among them (register.xml with SIPp's setdest from the user's
# row, one SIPp spreading its REGISTERs over all the servers).
register_series() {
    local label=$1 targets=$2 r scen=register.xml; shift 2
    if [[ $targets == *,* ]]; then
        scen=$OUT/register-spread.xml
        sed 's|^\( *\)<send retrans=|\1<nop><action><setdest host="[field2]" port="[field3]" protocol="udp"/></action></nop>\n&|' \
            "$SIP/register.xml" >"$scen"
    fi
    BEST_REG=0
    for r in "$@"; do
        { echo SEQUENTIAL; seq 1 $((r * SECONDS_PER_RATE)) |
            awk -v p="${label}r${r}u" -v d="$DOMAIN" -v t="$targets" '
                BEGIN { n = split(t, to, ",") }
                { split(to[($1 - 1) % n + 1], hp, ":"); print p $1 ";" d ";" hp[1] ";" hp[2] ";" }'
        } >"$OUT/$label-reg-$r.csv"
        bench "$label" "$r" "$scen" "$OUT/$label-reg-$r.csv" "${targets%%,*}" \
            -key contact_hostport "127.0.0.1:$UAS_PORT" || break
        BEST_REG=$r
        sleep 2
    done
}

# call_series LABEL REGISTRAR PROXY RATE...: registers a pool of 2,000 users
# at REGISTRAR, then calls them through PROXY, rate by rate until one fails;
# sets BEST_CALL.
call_series() {
    local label=$1 registrar=$2 proxy=$3 r; shift 3
    BEST_CALL=0
    { echo SEQUENTIAL; for i in $(seq 1 2000); do printf '%spool%d;%s;\n' "$label" "$i" "$DOMAIN"; done; } \
        >"$OUT/$label-pool.csv"
    (cd "$OUT" && exec sipp -sf "$ROOT/tests/sip/register.xml" -inf "$OUT/$label-pool.csv" \
        -key contact_hostport "127.0.0.1:$UAS_PORT" -m 2000 -r 500 -i 127.0.0.1 -p "$UAC_PORT" \
        -nostdin -timeout 60s "$registrar" >"$label-pool.log" 2>&1) &
    run_tracked $! || { echo "registering the call pool failed"; return 1; }
    sleep 2
    for r in "$@"; do
        bench "$label" "$r" uac-call.xml "$OUT/$label-pool.csv" "$proxy" || break
        BEST_CALL=$r
        sleep 3
    done
}

# start_kamailio NAME CFG SIP_PORT [-A DEFINE...]: a Kamailio in the
# foreground of its own session (so SIGKILL can reach all its processes),
# its run directory $OUT/NAME, module $MODULE, KAMAILIO_SHM MB of shared
# memory (256), SIP on SIP_ADDR (127.0.0.1); waits until its ctl socket
# answers. Sets PID_NAME.
start_kamailio() {
    local name=$1 cfg=$2 port=$3; shift 3
    local dir=$OUT/$name addr=${SIP_ADDR:-127.0.0.1} okey
    okey=$(server_overlay_key)
    mkdir -p "$dir"
    setsid kamailio -f "$cfg" -DD -E -m "${KAMAILIO_SHM:-256}" -M 16 -A "RUN_DIR=\"$dir\"" -A "SIP_PORT=$port" \
        -A "SIP_ADDR=$addr" -A "OVERLAY_KEY_FILE=\"$okey\"" \
        -A "CHORDSIP_MODULE=\"$MODULE\"" -A "CLIENT_KEY_FILE=\"$(client_key_file)\"" \
        "$@" >"$dir/kamailio.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    printf -v "PID_$name" '%s' "$pid"
    for _ in $(seq 1 150); do
        if kamcmd -s "unix:$dir/kamailio_ctl" core.uptime >/dev/null 2>&1; then
            echo "$name (pid $pid): SIP $addr:$port"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    port_taken "$dir/kamailio.log" && ports_lost "$name"
    echo "$name did not come up:"; tail -n 20 "$dir/kamailio.log"
    return 1
}

# shellcheck shell=bash
# Asterisk servers for the Asterisk test and benchmark scripts (sourced after
# tests/sip/lib.sh; needs ROOT, OUT, AST_PREFIX, DOMAIN, N_USERS, RUN_TAG and
# the key files $OUT/writer.key and $OUT/overlay.key).

# module_dir DIR: Asterisk's installed modules plus the two chordsip modules
# (target/asterisk/), as symbolic links: one astmoddir for every server.
module_dir() {
    mkdir -p "$1" && ln -sf "$AST_PREFIX"/lib/asterisk/modules/*.so "$1"/ &&
        ln -sf "$ROOT"/target/asterisk/res_sorcery_chordsip.so "$ROOT"/target/asterisk/res_pjsip_chordsip.so "$1"/
}

# make_keys: the shared writer key and overlay key of the servers, and RUN_TAG
# (the users' passwords and Call-IDs of this run).
make_keys() {
    "$ROOT/target/release/chordsip" keygen --out "$OUT/writer.key" 2>/dev/null || return 1
    head -c 32 /dev/urandom >"$OUT/overlay.key"
    RUN_TAG=$(od -An -tx1 -N4 /dev/urandom | tr -d ' \n')
}

# ast_users FILE FIRST LAST: SIPp -inf users (user;domain;[authentication ...])
# with the passwords make_server gives them.
ast_users() {
    { echo SEQUENTIAL; for i in $(seq "$2" "$3"); do
        printf 'user%04d;%s;[authentication username=user%04d password=pw-%04d-%s]\n' \
            "$i" "$DOMAIN" "$i" "$i" "$RUN_TAG"; done; } >"$1"
}

# ast_cli NAME COMMAND: runs one CLI command on a running server.
ast_cli() {
    timeout 10 "$AST_PREFIX/sbin/asterisk" -C "$OUT/$1/etc/asterisk.conf" -rx "$2" 2>/dev/null
}

# make_server NAME SIP_PORT OVERLAY_PORT BOOTSTRAP [STORE]: the configuration of
# one server in $OUT/NAME: N_USERS users (endpoint, aor, auth: digest), six
# users open0001.. without authentication, an endpoint "caller" for SIPp's
# calls, a dialplan that Dials PJSIP/<user> (480 when it has no contact, 404
# for no such user), hints for user0001..0010. STORE is chordsip (default)
# or astdb (Asterisk's own store, for the benchmark's baseline).
make_server() {
    local name=$1 sip=$2 ovl=$3 boot=$4 store=${5:-chordsip}
    local d=$OUT/$name
    mkdir -p "$d"/etc "$d"/lib "$d"/run "$d"/log "$d"/spool
    cat >"$d/etc/asterisk.conf" <<CONF
[directories]
astetcdir => $d/etc
astmoddir => $OUT/modules
astvarlibdir => $d/lib
astdbdir => $d/lib
astkeydir => $d/lib
astdatadir => $AST_PREFIX/var/lib/asterisk
astagidir => $d/lib
astspooldir => $d/spool
astrundir => $d/run
astlogdir => $d/log
astsbindir => $AST_PREFIX/sbin
[options]
systemname = $name
CONF
    {
        echo "[modules]"
        echo "autoload = no"
        local m
        for m in res_timing_timerfd res_sorcery_config res_sorcery_memory res_sorcery_astdb \
            res_pjproject res_pjsip res_pjsip_session res_pjsip_pubsub res_pjsip_registrar \
            res_pjsip_endpoint_identifier_user res_pjsip_authenticator_digest res_pjsip_sdp_rtp \
            res_rtp_asterisk chan_pjsip pbx_config app_dial func_devstate func_pjsip_endpoint bridge_simple \
            bridge_native_rtp codec_ulaw; do
            echo "load => $m.so"
        done
        if [ "$store" = chordsip ]; then
            echo "load => res_sorcery_chordsip.so"
            echo "load => res_pjsip_chordsip.so"
        fi
    } >"$d/etc/modules.conf"
    printf '[general]\n[logfiles]\nconsole => notice,warning,error\nmessages => notice,warning,error\n' \
        >"$d/etc/logger.conf"
    printf '[general]\n' >"$d/etc/rtp.conf"
    if [ "$store" = chordsip ]; then
        printf '[res_pjsip]\ncontact = chordsip\n' >"$d/etc/sorcery.conf"
        {
            echo "[general]"
            echo "listen = 127.0.0.1:$ovl"
            [ -n "$boot" ] && echo "bootstrap = $boot"
            echo "key_file = $OUT/overlay.key"
            echo "writer_key_file = $OUT/writer.key"
            echo "timeout_ms = 1500"
            echo "mirror_interval_s = ${MIRROR_INTERVAL_S:-2}"
            echo "set = stabilize_ms=100"
            echo "set = check_predecessor_ms=100"
        } >"$d/etc/chordsip.conf"
    else
        printf '[res_pjsip]\ncontact = astdb,registrar\n' >"$d/etc/sorcery.conf"
    fi
    {
        printf '[global]\ntype = global\ncontact_expiration_check_interval = 1\n\n'
        printf '[udp]\ntype = transport\nprotocol = udp\nbind = 127.0.0.1:%s\n\n' "$sip"
        printf '[caller]\ntype = endpoint\ncontext = users\ndisallow = all\nallow = ulaw\ndirect_media = no\n\n'
        local i u
        for i in $(seq 1 "$N_USERS"); do
            u=$(printf 'user%04d' "$i")
            printf '[%s]\ntype = endpoint\ncontext = users\ndisallow = all\nallow = ulaw\ndirect_media = no\nauth = %s\naors = %s\n' "$u" "$u" "$u"
            printf '[%s]\ntype = auth\nauth_type = userpass\nusername = %s\npassword = pw-%04d-%s\n' "$u" "$u" "$i" "$RUN_TAG"
            printf '[%s]\ntype = aor\nmax_contacts = 1\nremove_existing = yes\nminimum_expiration = 5\nmaximum_expiration = 7200\n\n' "$u"
        done
        for i in $(seq 1 6); do
            u=$(printf 'open%04d' "$i")
            printf '[%s]\ntype = endpoint\ncontext = users\ndisallow = all\nallow = ulaw\naors = %s\n' "$u" "$u"
            printf '[%s]\ntype = aor\nmax_contacts = 1\nremove_existing = yes\nmaximum_expiration = 7200\n\n' "$u"
        done
    } >"$d/etc/pjsip.conf"
    {
        echo "[general]"
        echo "[users]"
        # shellcheck disable=SC2016 # dialplan variables, not shell ones
        printf '%s\n' 'exten => _[a-z].,1,GotoIf($["${PJSIP_ENDPOINT(${EXTEN},aors)}" = ""]?unknown)' \
            ' same => n,Dial(PJSIP/${EXTEN},10)' ' same => n,Hangup(20)' ' same => n(unknown),Hangup(1)'
        local i
        for i in $(seq 1 10); do printf 'exten => user%04d,hint,PJSIP/user%04d\n' "$i" "$i"; done
    } >"$d/etc/extensions.conf"
}

# start_asterisk NAME: runs $OUT/NAME in the foreground (-f) of its own
# process, output in $OUT/NAME/asterisk.out; waits until its CLI answers and
# res_pjsip is loaded. Sets PID_NAME.
start_asterisk() {
    local name=$1 d=$OUT/$1
    "$AST_PREFIX/sbin/asterisk" -f -n -C "$d/etc/asterisk.conf" >"$d/asterisk.out" 2>&1 </dev/null &
    local pid=$!
    pids+=("$pid")
    printf -v "PID_$name" '%s' "$pid"
    for _ in $(seq 1 150); do
        if ast_cli "$name" "module show like res_pjsip.so" | grep -q 'res_pjsip.so.*Running'; then
            echo "Asterisk $name (pid $pid) up"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    echo "Asterisk $name did not come up:"; tail -n 30 "$d/asterisk.out"
    return 1
}

# wait_ring COUNT NAME...: until every named server's node lists COUNT-1
# successors and a predecessor (each knows every other), at most 10 s.
wait_ring_of() {
    local count=$1 name status ok; shift
    for _ in $(seq 1 100); do
        ok=1
        for name in "$@"; do
            status=$(ast_cli "$name" "chordsip show status")
            grep -q "^successors $((count - 1)) predecessors [1-9]" <<<"$status" || ok=0
        done
        [ $ok = 1 ] && return 0
        sleep 0.1
    done
    echo "servers $* did not form one ring of $count within 10 s"
    return 1
}

# wait_joined NAME: until the server's chordsip node is in the overlay (10 s).
wait_joined() {
    for _ in $(seq 1 100); do
        ast_cli "$1" "chordsip show status" | grep -q 'joined 1' && return 0
        sleep 0.1
    done
    echo "Asterisk $1's node did not join:"; ast_cli "$1" "chordsip show status"; tail -n 20 "$OUT/$1/asterisk.out"
    return 1
}

# Shared by chordsip-prestart and chordsip-start (sourced; installed as
# /usr/lib/chordsip/service.sh): reads /etc/chordsip/NAME.conf, the
# configuration of the instance chordsip@NAME.service.
#
# The file holds one setting per line, `name = value` (spaces around `=`
# optional); lines starting with `#` and empty lines are ignored. Values are
# taken literally (no quotes, no variables). See /etc/chordsip/default.conf.
# shellcheck disable=SC2034 # (the variables set here are for the scripts that source it)

CHORDSIP_BIN=${CHORDSIP_BIN:-/usr/bin/chordsip}
CHORDSIP_CONF_DIR=${CHORDSIP_CONF_DIR:-/etc/chordsip}
CHORDSIP_STATE_ROOT=${CHORDSIP_STATE_ROOT:-/var/lib/chordsip}

die() {
    echo "chordsip@${INSTANCE:-?}: $*" >&2
    exit 1
}

# trim VALUE: VALUE without leading and trailing blanks, on stdout.
trim() {
    local v=$1
    v=${v#"${v%%[![:space:]]*}"}
    v=${v%"${v##*[![:space:]]}"}
    printf '%s' "$v"
}

# load_config NAME: checks the instance name and reads its file into
# INSTANCE, STATE (the instance's state folder), CONF_<setting> and the
# arrays CONF_SET (every `set` line) and CONF_ABILITY (every `ability` line).
load_config() {
    INSTANCE=${1:-}
    [ -n "$INSTANCE" ] || die "no instance name (chordsip@NAME.service reads $CHORDSIP_CONF_DIR/NAME.conf)"
    [[ $INSTANCE =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] ||
        die "instance name '$INSTANCE': letters, digits, '_', '.', '-' only"
    STATE=$CHORDSIP_STATE_ROOT/$INSTANCE
    local file=$CHORDSIP_CONF_DIR/$INSTANCE.conf line name value n=0
    [ -r "$file" ] || die "cannot read $file"
    CONF_listen='' CONF_advertise='' CONF_bootstrap='' CONF_overlay='' CONF_key_file=''
    CONF_writer_key_file='' CONF_node_key_file='' CONF_client_socket='' CONF_client_key_file=''
    CONF_log='' CONF_replicas='' CONF_successors='' CONF_open_overlay=''
    CONF_SET=() CONF_ABILITY=()
    while IFS= read -r line || [ -n "$line" ]; do
        n=$((n + 1))
        line=$(trim "$line")
        [ -z "$line" ] && continue
        [ "${line:0:1}" = "#" ] && continue
        [[ $line == *=* ]] || die "$file:$n: expected 'name = value': $line"
        name=$(trim "${line%%=*}")
        value=$(trim "${line#*=}")
        case $name in
            listen | advertise | bootstrap | overlay | key_file | writer_key_file | node_key_file | \
                client_socket | client_key_file | log | replicas | successors | open_overlay)
                printf -v "CONF_$name" '%s' "$value" ;;
            set) CONF_SET+=("$value") ;;
            ability) CONF_ABILITY+=("$value") ;;
            *) die "$file:$n: unknown setting '$name'" ;;
        esac
    done <"$file"
    [ -n "$CONF_listen" ] || die "$file: no listen address"
    case $CONF_open_overlay in
        '' | no | false | 0) CONF_open_overlay='' ;;
        yes | true | 1) CONF_open_overlay=1 ;;
        *) die "$file: open_overlay = $CONF_open_overlay: yes or no" ;;
    esac
}

# node_args: the `chordsip node` arguments of the loaded configuration, in
# the array NODE_ARGS.
node_args() {
    NODE_ARGS=(node --listen "$CONF_listen")
    local v
    [ -n "$CONF_advertise" ] && NODE_ARGS+=(--advertise "$CONF_advertise")
    [ -n "$CONF_bootstrap" ] && NODE_ARGS+=(--bootstrap "$CONF_bootstrap")
    [ -n "$CONF_overlay" ] && NODE_ARGS+=(--overlay "$CONF_overlay")
    [ -n "$CONF_key_file" ] && NODE_ARGS+=(--key-file "$CONF_key_file")
    [ -n "$CONF_writer_key_file" ] && NODE_ARGS+=(--writer-key-file "$CONF_writer_key_file")
    [ -n "$CONF_node_key_file" ] && NODE_ARGS+=(--set "node_key_file=$CONF_node_key_file")
    [ -n "$CONF_client_socket" ] && NODE_ARGS+=(--client-socket "$CONF_client_socket")
    [ -n "$CONF_client_key_file" ] && NODE_ARGS+=(--client-key-file "$CONF_client_key_file")
    [ -n "$CONF_log" ] && NODE_ARGS+=(--log "$CONF_log")
    [ -n "$CONF_replicas" ] && NODE_ARGS+=(--replicas "$CONF_replicas")
    [ -n "$CONF_successors" ] && NODE_ARGS+=(--successors "$CONF_successors")
    [ -n "$CONF_open_overlay" ] && NODE_ARGS+=(--open-overlay)
    for v in "${CONF_ABILITY[@]}"; do NODE_ARGS+=(--ability "$v"); done
    for v in "${CONF_SET[@]}"; do NODE_ARGS+=(--set "$v"); done
    return 0
}

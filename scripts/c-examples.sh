#!/usr/bin/env bash
# Builds the C examples (c-examples/) against the staged install and runs
# each one plainly and under valgrind: minimal_node as a new ring plus a
# second process joining it, two_nodes, and poll_loop.
# Stages the install first unless CHORDSIP_STAGED=1 (scripts/c-tests.sh has
# just done it). Exits non-zero if any run fails.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
STAGE=$ROOT/target/stage
if [ "${CHORDSIP_STAGED:-0}" != 1 ]; then
    make install PREFIX="$STAGE" || exit 1
fi
export PKG_CONFIG_PATH=$STAGE/lib/pkgconfig
BIN=$ROOT/target/c-examples
OUT=$ROOT/target/c-examples/logs
rm -rf "$BIN"
make -C c-examples BUILD="$BIN" || exit 1
mkdir -p "$OUT"

VALGRIND=(valgrind -q --error-exitcode=9 --leak-check=full
    --errors-for-leak-kinds=definite,possible --suppressions="$ROOT/tests/c/valgrind.supp")
failed=()

# run LABEL CMD...: runs one command, output to $OUT/LABEL.log, and reports.
run() {
    local label=$1; shift
    local start end rc
    start=$(date +%s.%N)
    "$@" >"$OUT/$label.log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    if [ $rc -eq 0 ]; then
        printf 'PASS  %-32s %6.2f s\n' "$label" "$(awk -v a="$end" -v b="$start" 'BEGIN { printf "%.2f", a - b }')"
    else
        printf 'FAIL  %-32s exit %d (log: %s)\n' "$label" $rc "$OUT/$label.log"
        tail -n 20 "$OUT/$label.log" | sed 's/^/      /'
        failed+=("$label")
    fi
}

# minimal_node twice: a first node up until signalled, a second one joining it.
minimal_pair() {
    local prefix=$1; shift           # remaining args: wrapper command (valgrind ...) or none
    local first_log=$OUT/$prefix-first.out addr="" pid rc
    local slow=()
    [ "$prefix" = valgrind ] && slow=("${SLOW[@]}")
    "$@" "$BIN/minimal_node" -t 120 "${slow[@]}" >"$first_log" 2>&1 &
    pid=$!
    for _ in $(seq 1 200); do        # up to 20 s for the address line
        addr=$(sed -n 's/^addr //p' "$first_log")
        [ -n "$addr" ] && break
        sleep 0.1
    done
    if [ -z "$addr" ]; then
        echo "first minimal_node printed no address"; cat "$first_log"
        kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
        return 1
    fi
    "$@" "$BIN/minimal_node" -j "$addr" -t 1 "${slow[@]}"
    rc=$?
    kill -TERM "$pid"
    wait "$pid"
    local rc_first=$?
    echo "--- first node:"; cat "$first_log"
    [ $rc -eq 0 ] && [ $rc_first -eq 0 ]
}

echo "== C examples, plain"
run minimal_node-alone "$BIN/minimal_node" -t 0
run minimal_node-pair minimal_pair plain
run two_nodes "$BIN/two_nodes"
run poll_loop "$BIN/poll_loop"

echo "== C examples under valgrind (deadlines widened: -o)"
# Under valgrind everything runs some 50 times slower and each new code path
# is translated first: the examples get six times the default deadlines
# (no run is retried).
SLOW=(-o op_timeout_ms=30000 -o rpc_timeout_initial_ms=1200 -o rpc_timeout_max_ms=6000)
run valgrind-minimal_node-alone "${VALGRIND[@]}" "$BIN/minimal_node" -t 0 "${SLOW[@]}"
run valgrind-minimal_node-pair minimal_pair valgrind "${VALGRIND[@]}"
run valgrind-two_nodes "${VALGRIND[@]}" "$BIN/two_nodes" "${SLOW[@]}"
run valgrind-poll_loop "${VALGRIND[@]}" "$BIN/poll_loop" "${SLOW[@]}"

if [ ${#failed[@]} -gt 0 ]; then
    echo "C examples FAILED: ${failed[*]}"
    exit 1
fi
echo "C examples: all passed"

#!/usr/bin/env bash
# Fails when a module of src/ imports a module it may not (docs/ARCHITECTURE.md,
# "Allowed dependencies"). Each module lists the crate modules it may use; a
# `crate::X` path outside that list, in code (comments are ignored), fails.
# The pure core (id, wire, owner, storage, routing, types, engine, ...) may
# never reach sip, node, runtime, client, ffi, sim or testnet, and sip never
# reaches the engine, a node or a client.
set -euo pipefail
cd "$(dirname "$0")/../src"

# module -> the crate modules it may import (besides itself)
declare -A allowed=(
    [error]=""
    [id]=""
    [stats]=""
    [metrics]="id stats wire"
    [clock]=""
    [dns]="error"
    [wire]="error id"
    [owner]="id wire"
    [identity]="id owner wire"
    [ability]="error id identity owner types"
    [storage]="id wire"
    [routing]="id wire"
    [membership]="id wire"
    [types]="error id owner wire"
    [config]="ability error id owner storage types wire"
    [engine]="ability config error id identity membership metrics owner routing stats storage types wire"
    [sip]="error id owner types"
    [sim]="config engine error id owner types wire"
    [runtime]="config engine error id wire"
    [publish]="config dns engine error id runtime wire"
    [node]="ability clock config engine error id owner publish runtime stats types wire"
    [client]="ability clock error id owner sip types wire"
    [ua]="error node runtime sip"
    [testnet]="client config error id node sip"
    [ffi]="*"
    [lib]="*"
    [bin]="*"
)

fail=0
for path in $(find . -name '*.rs' | sort); do
    rel=${path#./}
    module=${rel%%/*}
    module=${module%.rs}
    if [ -z "${allowed[$module]+set}" ]; then
        echo "check-deps: $rel: module '$module' has no entry in scripts/check-deps.sh" >&2
        fail=1
        continue
    fi
    list=${allowed[$module]}
    [ "$list" = "*" ] && continue
    # Code only: drop // comments (doc comments included), then find crate:: paths.
    used=$(sed -e 's://.*$::' "$path" | grep -o 'crate::[a-z_{]*' | sed 's/crate:://' | sort -u || true)
    for dep in $used; do
        if [ "$dep" = "{" ]; then
            echo "check-deps: $rel: grouped 'crate::{...}' import; write one crate:: path per module" >&2
            fail=1
            continue
        fi
        [ "$dep" = "$module" ] && continue
        case " $list " in
            *" $dep "*) ;;
            *)
                echo "check-deps: $rel ($module) imports crate::$dep, which it may not" >&2
                fail=1
                ;;
        esac
    done
done
if [ "$fail" -ne 0 ]; then
    echo "check-deps: forbidden module dependencies (see docs/ARCHITECTURE.md)" >&2
    exit 1
fi
echo "module dependencies are as docs/ARCHITECTURE.md allows"

#!/usr/bin/env bash
# The boundary benchmark, side by side in one run: the same 16-node loopback
# overlay and sequential blocking put/get/lookup through the Rust API, the C
# API and the Python binding, plus client-handle round trips (UDP and UNIX).
# Usage: scripts/bench-boundary.sh [OPS]   (default 5000 per row)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OPS=${1:-5000}
./scripts/setup.sh
make -s install PREFIX="$ROOT/target/stage" >/dev/null
export PKG_CONFIG_PATH="$ROOT/target/stage/lib/pkgconfig"
cc -O2 -Wall -Wextra -Werror benches/c/boundary.c $(pkg-config --cflags --libs chordsip) \
    -Wl,-rpath,"$ROOT/target/stage/lib" -o target/bench-boundary-c
[ -x target/pyenv/bin/python ] || python3 -m venv target/pyenv
cargo bench --bench boundary --no-run -q 2>/dev/null
echo "| API | op | ops/s | p50 µs | p99 µs |"
echo "|---|---|---|---|---|"
cargo bench -q --bench boundary -- "$OPS" 2>/dev/null | grep '^|'
./target/bench-boundary-c "$OPS"
CHORDSIP_LIBRARY="$ROOT/target/release/libchordsip.so" PYTHONPATH="$ROOT/bindings/python" \
    target/pyenv/bin/python benches/boundary.py "$OPS"

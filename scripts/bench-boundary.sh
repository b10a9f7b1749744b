#!/usr/bin/env bash
# The boundary benchmark, side by side in one run: the same 16-node loopback
# overlay and sequential blocking put/get/lookup through the Rust API, the C
# API and the Python binding, plus client-handle round trips (UDP and UNIX).
# Usage: scripts/bench-boundary.sh [OPS] [RUNS]   (default 5000 calls per row, 3 runs)
# Prints, per row, the median over the runs of ops/s, p50 and p99 (the figures
# in docs/PERFORMANCE.md).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OPS=${1:-5000}
RUNS=${2:-3}
./scripts/setup.sh
make -s install PREFIX="$ROOT/target/stage" >/dev/null
export PKG_CONFIG_PATH="$ROOT/target/stage/lib/pkgconfig"
cc -O2 -Wall -Wextra -Werror benches/c/boundary.c $(pkg-config --cflags --libs chordsip) \
    -Wl,-rpath,"$ROOT/target/stage/lib" -o target/bench-boundary-c
[ -x target/pyenv/bin/python ] || python3 -m venv target/pyenv
cargo bench --bench boundary --no-run -q 2>/dev/null
one_run() {
    cargo bench -q --bench boundary -- "$OPS" 2>/dev/null | grep '^|'
    ./target/bench-boundary-c "$OPS"
    CHORDSIP_LIBRARY="$ROOT/target/release/libchordsip.so" PYTHONPATH="$ROOT/bindings/python" \
        target/pyenv/bin/python benches/boundary.py "$OPS"
}
rows=$(for _ in $(seq "$RUNS"); do one_run; done)
echo "| API | call | ops/s | p50 µs | p99 µs |   (median of $RUNS runs)"
echo "|---|---|---|---|---|"
python3 -c '
import collections, statistics, sys
rows = collections.OrderedDict()
for line in sys.stdin:
    f = [x.strip() for x in line.strip().strip("|").split("|")]
    rows.setdefault((f[0], f[1]), []).append([float(x) for x in f[2:5]])
for (api, call), v in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    med = [statistics.median(col) for col in zip(*v)]
    print("| %s | %s | %.0f | %.0f | %.0f |" % (api, call, *med))
' <<<"$rows"

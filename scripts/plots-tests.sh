#!/usr/bin/env bash
# The charts pipeline at small sizes (under a minute once built): benches/curves.rs measures
# the three curves into fresh CSV files, scripts/plots.sh draws them, and
# scripts/lib/check_curves.py checks that the numbers are sane (mean hops near ½·log2 N at each
# N, both latency setups measured, the overlay back to every key found at full copies after a
# quarter of its nodes died) and that each chart is a real PNG of some size.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export CARGO_TERM_COLOR=never
dir="$ROOT/target/plots-test"
rm -rf "$dir"
start=$(date +%s)
echo "=== build benches/curves.rs ==="
cargo bench --quiet --bench curves --no-run
built=$(date +%s)
# Bounded: the bench's own loops are, and the whole run stops at 5 minutes.
PLOTS_RERUN=1 CURVES_ARGS="--sizes 16,64,256 --lookups 500 --latency-nodes 16 --latency-depths 1,32 \
--latency-lookups 1000 --settle-s 2 --recovery-nodes 16 --recovery-keys 100 --recovery-bound-s 30 --hold-s 1" \
    timeout -k 10 300 ./scripts/plots.sh "$dir/csv" "$dir/png"
python3 "$ROOT/scripts/lib/check_curves.py" "$dir/csv" "$dir/png"
echo "charts pipeline passed in $(( $(date +%s) - built )) s (build $(( built - start )) s)"

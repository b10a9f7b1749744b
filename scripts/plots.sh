#!/usr/bin/env bash
# Turns the benchmark curves into PNG charts (docs/PERFORMANCE.md, "Charts"):
#
#   scripts/plots.sh [CSV_DIR] [OUT_DIR]
#
# CSV_DIR (default target/curves) holds hops.csv, latency.csv and recovery.csv from
# benches/curves.rs. A missing one is measured first (`cargo bench --bench curves -- --csv
# CSV_DIR --only NAME $CURVES_ARGS`); PLOTS_RERUN=1 measures all three anew. CURVES_ARGS
# passes sizes to the bench (benches/curves.rs lists them; its defaults are the documented run).
# OUT_DIR (default target/plots) gets hops.png (hops against N with ½·log2 N), latency.png
# (lookup latency CDFs) and recovery.png (the kill-recovery timeline), drawn by
# scripts/lib/plots.py with matplotlib, installed from PyPI (pinned, wheels only:
# scripts/lib/requirements-plots.txt) into the test venv target/pyenv (scripts/lib/pyenv.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export CARGO_TERM_COLOR=never PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
CSV_DIR="${1:-target/curves}"
OUT_DIR="${2:-target/plots}"
mkdir -p "$CSV_DIR" "$OUT_DIR"
# What a fresh Debian machine lacks for this: the build tools and python3 with venv.
./scripts/setup.sh build python </dev/null

missing=()
for name in hops latency recovery; do
    if [ "${PLOTS_RERUN:-0}" = 1 ] || [ ! -s "$CSV_DIR/$name.csv" ]; then
        missing+=("$name")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    only=$(IFS=,; echo "${missing[*]}")
    echo "=== plots: measuring $only into $CSV_DIR (benches/curves.rs) ==="
    # shellcheck disable=SC2086 # CURVES_ARGS is a list of options
    cargo bench --quiet --bench curves -- --csv "$CSV_DIR" --only "$only" ${CURVES_ARGS:-}
else
    echo "=== plots: reusing the CSV files in $CSV_DIR (PLOTS_RERUN=1 measures anew) ==="
fi

. "$ROOT/scripts/lib/pyenv.sh"
pyenv_make "$ROOT"
# Pinned: a warm venv needs no network. Wheels only, never a build from source.
"$PY" -m pip install -q --only-binary=:all: -r "$ROOT/scripts/lib/requirements-plots.txt" </dev/null
MPLCONFIGDIR="$ROOT/target/mplconfig" "$PY" "$ROOT/scripts/lib/plots.py" "$CSV_DIR" "$OUT_DIR"

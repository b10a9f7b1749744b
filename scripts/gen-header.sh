#!/usr/bin/env bash
# Regenerates include/chordsip.h from src/ffi with the pinned cbindgen.
# --verify: fail (exit 1) if the checked-in header differs from the code.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --quiet --release --example gen_header -- "$@"

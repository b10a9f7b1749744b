#!/usr/bin/env bash
# The main job: build chordsip and run a local overlay demo on loopback
# (16 nodes, 200 values, a quarter of the nodes killed one after another).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh build
cargo build --release --quiet
exec ./target/release/chordsip demo "$@"

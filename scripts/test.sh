#!/usr/bin/env bash
# Runs every test: formatting, lints, unit/property tests, the in-memory
# network suite, real UDP nodes, node processes, and a demo run.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export CARGO_TERM_COLOR=never
step() { echo; echo "=== $* ==="; }
step "format"
cargo fmt --check
step "clippy"
cargo clippy --all-targets --release --quiet -- -D warnings
step "tests (release build: the network suites run thousands of nodes)"
cargo test --release -- --test-threads 2
step "demo smoke run"
./target/release/chordsip demo --nodes 12 --values 100
echo
echo "all tests passed"

#!/usr/bin/env bash
# takt's test command (the one the README names and .ci/run calls).
#
# Runs, in order: formatting, clippy with warnings denied, the release build, every test of
# the workspace (unit, integration, property, determinism, CLI), and the loom model checks of
# takt's own lock-free code. Real-time tests need root for SCHED_FIFO; without it they print
# "SKIPPED <name>: ..." and do not pretend to pass.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

step "format"
cargo fmt --all -- --check

step "clippy (warnings denied)"
cargo clippy --workspace --all-targets --release -- -D warnings

step "build"
cargo build --release --workspace

step "tests"
cargo test --release --workspace --no-fail-fast

step "loom model checks (LOOM_MAX_PREEMPTIONS=3)"
LOOM_MAX_PREEMPTIONS=3 RUSTFLAGS="--cfg loom" \
  cargo test -p takt --release --target-dir target/loom --lib -- loom

#!/usr/bin/env bash
# takt's test command (the one the README names and .ci/run calls).
#
# Runs, in order: formatting, clippy with warnings denied, the release build, every test of
# the workspace (unit, integration, property, determinism, CLI), and the loom model checks of
# takt's own lock-free code. Real-time tests need root for SCHED_FIFO; without it they print
# "SKIPPED <name>: ..." and do not pretend to pass; a real-time test whose run the host spoilt
# (every miss the platform's) prints "INCONCLUSIVE <name>: ..." and is listed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

step "format"
cargo fmt --all -- --check

step "clippy (warnings denied)"
cargo clippy --workspace --all-targets --release -- -D warnings

step "fuzz targets compile (their own workspace, built for real by cargo afl)"
# Not a workspace member, so nothing else compiles them: a library change that breaks a
# fuzz target would otherwise go unseen until the next fuzzing campaign.
cargo check --manifest-path verification/fuzz/Cargo.toml --bins --target-dir target/fuzz

step "build"
cargo build --release --workspace
# The takt binary as shipped (no test hooks): `cargo test` below rebuilds target/release/takt
# with them, so tools/tests/shipped_binary.rs checks this copy instead of building again.
mkdir -p target/shipped-copy
cp target/release/takt target/shipped-copy/takt
export TAKT_SHIPPED_BINARY="$PWD/target/shipped-copy/takt"

step "tests"
# A real-time test whose run was spoilt only by the platform (every miss attributed to a host
# stall or a late wake-up, see takt::dispatch::attribution) records itself here; it is
# listed below as INCONCLUSIVE: not passed, not failed.
TAKT_INCONCLUSIVE_LOG="$(mktemp)"
export TAKT_INCONCLUSIVE_LOG
trap 'rm -f "$TAKT_INCONCLUSIVE_LOG"' EXIT
tests_status=0
cargo test --release --workspace --no-fail-fast || tests_status=$?
if [ -s "$TAKT_INCONCLUSIVE_LOG" ]; then
  step "INCONCLUSIVE: $(wc -l < "$TAKT_INCONCLUSIVE_LOG") real-time test(s) whose runs only the platform spoilt (not counted as passed)"
  cat "$TAKT_INCONCLUSIVE_LOG"
fi
[ "$tests_status" -eq 0 ] || exit "$tests_status"

step "loom model checks (LOOM_MAX_PREEMPTIONS=3)"
LOOM_MAX_PREEMPTIONS=3 RUSTFLAGS="--cfg loom" \
  cargo test -p takt --release --target-dir target/loom --lib -- loom

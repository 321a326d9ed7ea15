#!/usr/bin/env bash
# The test command from the README. Runs formatting, lints, unit/integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace
cargo test --release --workspace

//! The checks behind takt's coverage-guided fuzz targets (`src/bin/fuzz_*.rs`).
//!
//! Owns: what one fuzz input is run through and which properties must hold for it, for
//! the manifest parser ([`manifest::check_manifest`]), the parser followed by the planner
//! ([`manifest::check_manifest_plan`]) and the trace reader ([`trace::check_trace`]).
//! A broken property panics, which AFL++ records as a crash. The checks must never
//! panic for any other reason, never write outside the one scratch file of the trace
//! check, and never depend on the clock, so a crash input reproduces on every replay.
//!
//! The logic lives in this library rather than in the `fuzz!` closures so that plain
//! `cargo test` runs every seed through exactly the code the fuzzers run.

pub mod catalogs;
pub mod manifest;
pub mod trace;

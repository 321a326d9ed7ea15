//! Time conversions every task of this app shares (the range-checked parameter readers are
//! takt's: `TaskBuilder::param_f64_in`, `param_ms_in_ns`, `param_seed`).
//!
//! Owns: the task period in seconds and the nanosecond-to-second conversion: plain arithmetic, fit for `step`.

use takt::task::TaskBuilder;

/// The task's period in seconds: the step length of everything that integrates over time.
pub fn period_s(b: &TaskBuilder<'_>) -> f64 {
    ns_to_s(b.timing().period_ns)
}

/// Nanoseconds to seconds, as every task converts logical time.
pub fn ns_to_s(ns: u64) -> f64 {
    ns as f64 * 1e-9
}

//! Time conversions every task of this app shares (the manifest parameters themselves are
//! declared once per task, as takt `FloatParam`/`MsParam`/`SeedParam` consts next to each
//! task's parameter struct, and listed in its `PARAMS`).
//!
//! Owns: the task period in seconds and the nanosecond-to-second conversion, and the
//! freshness rule every task applies to the samples it reads: plain arithmetic, fit for
//! `step`.

use takt::task::TaskBuilder;

/// The task's period in seconds: the step length of everything that integrates over time.
pub fn period_s(b: &TaskBuilder<'_>) -> f64 {
    ns_to_s(b.timing().period_ns)
}

/// Nanoseconds to seconds, as every task converts logical time.
pub fn ns_to_s(ns: u64) -> f64 {
    ns as f64 * 1e-9
}

/// Whether a sample stamped `time_ns` is at most `timeout_ns` old at `now_ns`.
pub fn fresh(now_ns: u64, time_ns: u64, timeout_ns: u64) -> bool {
    now_ns.saturating_sub(time_ns) <= timeout_ns
}

//! Reading task parameters with their allowed ranges.
//!
//! Owns: the checks every constructor applies to `[task.params]` values, so a bad value is
//! refused at start with the task, the parameter and the allowed range named, and the
//! freshness rule every task applies to the samples it reads. The parameter readers must
//! never be used from `step`: they allocate their error messages. ([`fresh`] is a plain
//! comparison, made for `step`.)

use takt::task::{TaskBuildError, TaskBuilder};

/// A float parameter (an integer is accepted too) in `min..=max`, or `default` when absent.
pub fn f64_in(
    b: &TaskBuilder<'_>,
    name: &str,
    default: f64,
    min: f64,
    max: f64,
) -> Result<f64, TaskBuildError> {
    let value = b.param_f64(name, default)?;
    // `!(a && b)` rather than `!range.contains` so that NaN is refused too.
    if !(value >= min && value <= max) {
        return Err(TaskBuildError::Param {
            task: b.task_name().to_string(),
            name: name.to_string(),
            reason: format!("{value} is out of range; allowed is {min} to {max}"),
        });
    }
    Ok(value)
}

/// A duration parameter given in milliseconds (float or integer) in `min_ms..=max_ms`,
/// returned in nanoseconds.
pub fn ms_in_ns(
    b: &TaskBuilder<'_>,
    name: &str,
    default_ms: f64,
    min_ms: f64,
    max_ms: f64,
) -> Result<u64, TaskBuildError> {
    let ms = f64_in(b, name, default_ms, min_ms, max_ms)?;
    Ok((ms * 1e6 + 0.5) as u64)
}

/// A seed: any non-negative integer.
pub fn seed(b: &TaskBuilder<'_>, name: &str, default: u64) -> Result<u64, TaskBuildError> {
    let value = b.param_i64(name, default as i64)?;
    u64::try_from(value).map_err(|_| TaskBuildError::Param {
        task: b.task_name().to_string(),
        name: name.to_string(),
        reason: format!(
            "{value} is negative; allowed is an integer from 0 to {}",
            i64::MAX
        ),
    })
}

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

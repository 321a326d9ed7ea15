//! The `actuator` task: the last line before the vehicle, and its fail-safe.
//!
//! Owns: what is actually applied to the drive train and brakes. It limits the commanded
//! acceleration to the actuator's range and its rate of change (jerk), and when the
//! controller's command is missing or older than a timeout (the controller is not released,
//! as in the `parked` mode, or has stalled) it brakes on its own to a safe stop and holds the
//! car. It must never compute a command of its own beyond that fallback, and its step never
//! allocates, locks or does I/O.

use takt::task::{
    Declare, FloatParam, MsParam, Reader, StepContext, Task, TaskBuildError, TaskBuilder,
    TaskReport, Writer,
};

use crate::messages::{
    AccelCommand, AppliedCommand, FALSE, TOPIC_ACCEL_COMMAND, TOPIC_APPLIED_COMMAND, TRUE,
};
use crate::params;

/// Limits and fallback of the actuator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActuatorParams {
    pub accel_min_mps2: f64,
    pub accel_max_mps2: f64,
    /// Most change of the applied acceleration per second.
    pub jerk_max_mps3: f64,
    /// Applied when the command is stale: braking to a standstill, then holding.
    pub safe_stop_mps2: f64,
    /// A command older than this (from its controller job's release to this job's release)
    /// is stale.
    pub timeout_ns: u64,
}

pub const ACCEL_MIN_MPS2: FloatParam = FloatParam::new("accel_min_mps2", -8.0, -15.0, -0.5);
pub const ACCEL_MAX_MPS2: FloatParam = FloatParam::new("accel_max_mps2", 3.0, 0.5, 10.0);
pub const JERK_MAX_MPS3: FloatParam = FloatParam::new("jerk_max_mps3", 20.0, 0.1, 1000.0);
/// At least `accel_min_mps2` (checked when the task is built).
pub const SAFE_STOP_MPS2: FloatParam = FloatParam::new("safe_stop_mps2", -3.0, -15.0, -0.1);
pub const COMMAND_TIMEOUT_MS: MsParam = MsParam::new("command_timeout_ms", 30.0, 1.0, 10_000.0);

/// Every parameter the `actuator` task reads, as its catalog declares them.
pub const PARAMS: &[&dyn Declare] = &[
    &ACCEL_MIN_MPS2,
    &ACCEL_MAX_MPS2,
    &JERK_MAX_MPS3,
    &SAFE_STOP_MPS2,
    &COMMAND_TIMEOUT_MS,
];

impl Default for ActuatorParams {
    fn default() -> Self {
        ActuatorParams {
            accel_min_mps2: ACCEL_MIN_MPS2.default,
            accel_max_mps2: ACCEL_MAX_MPS2.default,
            jerk_max_mps3: JERK_MAX_MPS3.default,
            safe_stop_mps2: SAFE_STOP_MPS2.default,
            timeout_ns: COMMAND_TIMEOUT_MS.default_ns(),
        }
    }
}

/// The rate and range limiter with the stale-command fallback (state: the applied value).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActuatorLimiter {
    pub params: ActuatorParams,
    applied_mps2: f64,
}

/// One applied value and whether it came from the fallback.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Applied {
    pub accel_mps2: f64,
    pub safe_stop: bool,
}

impl ActuatorLimiter {
    /// Starts from no acceleration at all: the first commands ramp in at the jerk limit.
    pub fn new(params: ActuatorParams) -> Self {
        ActuatorLimiter {
            params,
            applied_mps2: 0.0,
        }
    }

    /// One step of length `dt_s` at `now_ns`. `command` is the newest visible command as
    /// `(accel_mps2, time_ns)`, if any.
    pub fn step(&mut self, now_ns: u64, command: Option<(f64, u64)>, dt_s: f64) -> Applied {
        let p = self.params;
        let fresh_command = command
            .filter(|&(_, time_ns)| now_ns.saturating_sub(time_ns) <= p.timeout_ns)
            .map(|(accel_mps2, _)| accel_mps2);
        let (target_mps2, safe_stop) = match fresh_command {
            Some(a) => (a, false),
            None => (p.safe_stop_mps2, true),
        };
        let target_mps2 = target_mps2.clamp(p.accel_min_mps2, p.accel_max_mps2);
        let max_change_mps2 = p.jerk_max_mps3 * dt_s;
        self.applied_mps2 = target_mps2.clamp(
            self.applied_mps2 - max_change_mps2,
            self.applied_mps2 + max_change_mps2,
        );
        Applied {
            accel_mps2: self.applied_mps2,
            safe_stop,
        }
    }
}

/// The actuator task.
pub struct Actuator {
    command_in: Reader<AccelCommand>,
    applied_out: Writer<AppliedCommand>,
    limiter: ActuatorLimiter,
    dt_s: f64,
    jobs: u64,
    safe_stop_jobs: u64,
    publish_errors: u64,
}

/// Builds the `actuator` task from its manifest parameters.
pub fn build(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    let accel_min_mps2 = b.get(&ACCEL_MIN_MPS2)?;
    let p = ActuatorParams {
        accel_min_mps2,
        accel_max_mps2: b.get(&ACCEL_MAX_MPS2)?,
        jerk_max_mps3: b.get(&JERK_MAX_MPS3)?,
        safe_stop_mps2: b.get(&FloatParam {
            min: accel_min_mps2,
            ..SAFE_STOP_MPS2
        })?,
        timeout_ns: b.get(&COMMAND_TIMEOUT_MS)?,
    };
    Ok(Box::new(Actuator {
        command_in: b.reader(TOPIC_ACCEL_COMMAND)?,
        applied_out: b.writer(TOPIC_APPLIED_COMMAND)?,
        limiter: ActuatorLimiter::new(p),
        dt_s: params::period_s(b),
        jobs: 0,
        safe_stop_jobs: 0,
        publish_errors: 0,
    }))
}

impl Task for Actuator {
    fn step(&mut self, ctx: &StepContext) {
        let now_ns = ctx.release_ns();
        let command = self.command_in.read(ctx).map(|c| (c.accel_mps2, c.time_ns));
        let applied = self.limiter.step(now_ns, command, self.dt_s);
        self.jobs += 1;
        if applied.safe_stop {
            self.safe_stop_jobs += 1;
        }
        let published = self.applied_out.publish(ctx, |a| {
            *a = AppliedCommand {
                time_ns: now_ns,
                accel_mps2: applied.accel_mps2,
                safe_stop: if applied.safe_stop { TRUE } else { FALSE },
                _pad: 0,
            };
        });
        if published.is_err() {
            self.publish_errors += 1;
        }
    }

    fn finish(&mut self, report: &mut TaskReport) {
        report.outcome.push((
            "safe_stop_jobs".into(),
            format!("{}/{}", self.safe_stop_jobs, self.jobs),
        ));
        if self.publish_errors > 0 {
            report
                .outcome
                .push(("publish_errors".into(), self.publish_errors.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const DT: f64 = 0.01;

    #[test]
    fn fresh_commands_pass_through_the_rate_limit() {
        let mut a = ActuatorLimiter::new(ActuatorParams::default());
        let first = a.step(10 * MS, Some((-6.0, 9 * MS)), DT);
        assert!(!first.safe_stop);
        assert!((first.accel_mps2 - -0.2).abs() < 1e-12, "20 m/s^3 * 10 ms");
        let mut last = first.accel_mps2;
        for k in 2..100u64 {
            let out = a.step(k * 10 * MS, Some((-6.0, k * 10 * MS - MS)), DT);
            assert!((out.accel_mps2 - last).abs() <= 0.2 + 1e-12);
            last = out.accel_mps2;
        }
        assert_eq!(last, -6.0);
        // Out-of-range commands are saturated.
        for k in 100..200u64 {
            last = a
                .step(k * 10 * MS, Some((-50.0, k * 10 * MS)), DT)
                .accel_mps2;
        }
        assert_eq!(last, ActuatorParams::default().accel_min_mps2);
    }

    #[test]
    fn stale_command_times_out_into_a_safe_stop() {
        let p = ActuatorParams::default();
        let mut a = ActuatorLimiter::new(p);
        // The controller last commanded +1 at 0 ms and then stopped being released.
        let cmd = Some((1.0, 0));
        let mut t = 0;
        let mut out = a.step(t, cmd, DT);
        assert!(!out.safe_stop);
        while t + 10 * MS <= p.timeout_ns {
            t += 10 * MS;
            out = a.step(t, cmd, DT);
            assert!(!out.safe_stop, "fresh at {t} ns");
        }
        t += 10 * MS;
        out = a.step(t, cmd, DT);
        assert!(out.safe_stop, "stale at {t} ns");
        for _ in 0..100 {
            t += 10 * MS;
            out = a.step(t, cmd, DT);
        }
        assert!(out.safe_stop);
        assert_eq!(out.accel_mps2, p.safe_stop_mps2);
    }

    #[test]
    fn no_command_at_all_is_a_safe_stop() {
        let mut a = ActuatorLimiter::new(ActuatorParams::default());
        let out = a.step(0, None, DT);
        assert!(out.safe_stop);
        assert!(out.accel_mps2 < 0.0);
    }
}

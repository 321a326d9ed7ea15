//! The `steer_actuator` task: the steering rack's electronics, the last line before the car.
//!
//! Owns: what is actually applied to the rack, and who has the wheel. It limits the
//! commanded road-wheel angle to the assist's range and its rate of change, and steers
//! only while the controller's command is fresh and engaged. Otherwise (the controller
//! disengaged, not released as in the `standby` mode, or stalled) it reports itself
//! inactive and the driver steers; while the controller disengaged it follows the measured
//! angle the command carries, so it takes over without a jump when the assist engages
//! again. Every applied command is folded into its share of the run's `digest:`, so a run
//! in which the controller never runs still has a digest that depends on what happened.
//! It must never compute a steering angle of its own, and its step never allocates, locks
//! or does I/O.

use lane_msgs::{FALSE, TRUE};
use sha2::{Digest, Sha256};
use takt::task::{
    Declare, FloatParam, MsParam, Reader, StepContext, Task, TaskBuildError, TaskBuilder,
    TaskReport, Writer,
};

use crate::messages::{SteerApplied, SteerCommand, TOPIC_STEER_APPLIED, TOPIC_STEER_COMMAND};
use crate::params::{self, fresh};

/// Limits and timeout of the actuator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActuatorParams {
    pub max_angle_rad: f64,
    pub max_rate_radps: f64,
    /// A command older than this (from its controller job's release to this job's) is
    /// stale: the driver gets the wheel.
    pub timeout_ns: u64,
}

pub const MAX_ANGLE_RAD: FloatParam = FloatParam::new("max_angle_rad", 0.1, 0.01, 0.6);
pub const MAX_RATE_RADPS: FloatParam = FloatParam::new("max_rate_radps", 0.2, 0.01, 10.0);
pub const COMMAND_TIMEOUT_MS: MsParam = MsParam::new("command_timeout_ms", 20.0, 1.0, 1_000.0);

/// Every parameter this task reads, as its catalog declares them.
pub const PARAMS: &[&dyn Declare] = &[&MAX_ANGLE_RAD, &MAX_RATE_RADPS, &COMMAND_TIMEOUT_MS];

impl Default for ActuatorParams {
    fn default() -> Self {
        ActuatorParams {
            max_angle_rad: MAX_ANGLE_RAD.default,
            max_rate_radps: MAX_RATE_RADPS.default,
            timeout_ns: COMMAND_TIMEOUT_MS.default_ns(),
        }
    }
}

/// The limiter (state: the angle applied last).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limiter {
    pub params: ActuatorParams,
    pub angle_rad: f64,
}

impl Limiter {
    /// The angle to apply for `command` (`None`: no fresh command) after `dt_s`, and
    /// whether the actuator steers.
    pub fn apply(&mut self, command: Option<&SteerCommand>, dt_s: f64) -> (f64, bool) {
        let p = self.params;
        match command {
            Some(c) if c.engaged == TRUE => {
                let step = p.max_rate_radps * dt_s;
                let target = c.angle_rad.clamp(-p.max_angle_rad, p.max_angle_rad);
                self.angle_rad += (target - self.angle_rad).clamp(-step, step);
                (self.angle_rad, true)
            }
            Some(c) => {
                // Disengaged: the command carries where the wheel is.
                self.angle_rad = c.angle_rad.clamp(-p.max_angle_rad, p.max_angle_rad);
                (self.angle_rad, false)
            }
            None => (self.angle_rad, false),
        }
    }
}

/// The actuator task.
pub struct SteerActuator {
    command_in: Reader<SteerCommand>,
    applied_out: Writer<SteerApplied>,
    limiter: Limiter,
    dt_s: f64,
    hasher: Sha256,
    jobs: u64,
    active_jobs: u64,
    publish_errors: u64,
}

/// Builds the `steer_actuator` task from its manifest parameters.
pub fn build(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    let p = ActuatorParams {
        max_angle_rad: b.get(&MAX_ANGLE_RAD)?,
        max_rate_radps: b.get(&MAX_RATE_RADPS)?,
        timeout_ns: b.get(&COMMAND_TIMEOUT_MS)?,
    };
    Ok(Box::new(SteerActuator {
        command_in: b.reader(TOPIC_STEER_COMMAND)?,
        applied_out: b.writer(TOPIC_STEER_APPLIED)?,
        limiter: Limiter {
            params: p,
            angle_rad: 0.0,
        },
        dt_s: params::period_s(b),
        hasher: Sha256::new(),
        jobs: 0,
        active_jobs: 0,
        publish_errors: 0,
    }))
}

impl Task for SteerActuator {
    fn step(&mut self, ctx: &StepContext) {
        let now_ns = ctx.release_ns();
        let timeout_ns = self.limiter.params.timeout_ns;
        let command = self
            .command_in
            .read(ctx)
            .filter(|c| fresh(now_ns, c.time_ns, timeout_ns))
            .map(|c| *c);
        let (angle_rad, active) = self.limiter.apply(command.as_ref(), self.dt_s);
        let applied = SteerApplied {
            time_ns: now_ns,
            angle_rad,
            active: if active { TRUE } else { FALSE },
            _pad: 0,
        };
        if self.applied_out.publish(ctx, |a| *a = applied).is_err() {
            self.publish_errors += 1;
        }
        self.hasher.update(ctx.job_index().to_le_bytes());
        self.hasher.update(bytemuck::bytes_of(&applied));
        self.jobs += 1;
        if active {
            self.active_jobs += 1;
        }
    }

    fn finish(&mut self, report: &mut TaskReport) {
        report.outcome.push((
            "active_jobs".into(),
            format!("{}/{}", self.active_jobs, self.jobs),
        ));
        if self.publish_errors > 0 {
            report
                .outcome
                .push(("publish_errors".into(), self.publish_errors.to_string()));
        }
        report.digest = Some(self.hasher.clone().finalize().into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(angle_rad: f64, engaged: bool) -> SteerCommand {
        SteerCommand {
            angle_rad,
            engaged: u32::from(engaged),
            ..SteerCommand::default()
        }
    }

    #[test]
    fn limits_rate_and_range_and_hands_over_without_a_jump() {
        let mut l = Limiter {
            params: ActuatorParams::default(),
            angle_rad: 0.0,
        };
        // 0.2 rad/s for 5 ms: 1 mrad per job towards the command, never beyond 0.1 rad.
        let (a, active) = l.apply(Some(&command(0.05, true)), 0.005);
        assert!(active && (a - 0.001).abs() < 1e-15, "{a}");
        for _ in 0..200 {
            l.apply(Some(&command(0.5, true)), 0.005);
        }
        assert_eq!(l.angle_rad, 0.1);
        // No fresh command: inactive, holding nothing of its own.
        assert_eq!(l.apply(None, 0.005), (0.1, false));
        // Disengaged: follows where the wheel is, and starts from there when engaged.
        assert_eq!(l.apply(Some(&command(-0.02, false)), 0.005), (-0.02, false));
        let (a, active) = l.apply(Some(&command(-0.02, true)), 0.005);
        assert!(active && a == -0.02);
    }
}

//! The `controller` task: longitudinal acceleration tracking, and the run's output digest.
//!
//! Owns: turning the planner's desired acceleration into a drive/brake command. The command
//! is feed-forward (desired acceleration plus the modelled drag) plus a PI correction on the
//! measured acceleration, with conditional integration as anti-windup; at standstill it
//! holds the brakes until the planner asks to pull away. It also owns the deployment's
//! `digest:`: every command it outputs, with its job index, is folded into a SHA-256 that
//! `finish` reports. It must never limit rates (the actuator does), and its step never
//! allocates, locks or does I/O (hashing 24 bytes into a fixed-size state does neither).

use sha2::{Digest, Sha256};
use takt::task::{
    Declare, FloatParam, MsParam, Reader, StepContext, Task, TaskBuildError, TaskBuilder,
    TaskReport, Writer,
};

use crate::messages::{
    AccelCommand, AccelRequest, EgoState, TOPIC_ACCEL_COMMAND, TOPIC_ACCEL_REQUEST, TOPIC_EGO_STATE,
};
use crate::params;
use crate::planner::fresh;

/// Parameters of the acceleration controller.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ControllerParams {
    /// Proportional gain on the acceleration error (dimensionless).
    pub kp: f64,
    /// Integral gain on the acceleration error, 1/s.
    pub ki_per_s: f64,
    /// The integral term never exceeds this magnitude.
    pub integral_limit_mps2: f64,
    pub output_min_mps2: f64,
    pub output_max_mps2: f64,
    /// The controller's model of the vehicle's drag, for the feed-forward.
    pub ff_rolling_mps2: f64,
    pub ff_aero_per_m: f64,
    /// Below this speed the vehicle counts as standing.
    pub standstill_speed_mps: f64,
    /// A standing vehicle pulls away only for a request above this.
    pub pull_away_mps2: f64,
    /// Brake command that holds a standing vehicle.
    pub hold_mps2: f64,
}

pub const OUTPUT_MIN_MPS2: FloatParam = FloatParam::new("output_min_mps2", -8.0, -15.0, -0.5);
pub const KP: FloatParam = FloatParam::new("kp", 0.5, 0.0, 10.0);
pub const KI_PER_S: FloatParam = FloatParam::new("ki_per_s", 1.0, 0.0, 20.0);
pub const INTEGRAL_LIMIT_MPS2: FloatParam = FloatParam::new("integral_limit_mps2", 1.0, 0.0, 5.0);
pub const OUTPUT_MAX_MPS2: FloatParam = FloatParam::new("output_max_mps2", 3.0, 0.5, 10.0);
pub const FF_ROLLING_MPS2: FloatParam = FloatParam::new("ff_rolling_mps2", 0.1, 0.0, 1.0);
pub const FF_AERO_PER_M: FloatParam = FloatParam::new("ff_aero_per_m", 0.0003, 0.0, 0.01);
pub const STANDSTILL_SPEED_MPS: FloatParam = FloatParam::new("standstill_speed_mps", 0.1, 0.0, 2.0);
pub const PULL_AWAY_MPS2: FloatParam = FloatParam::new("pull_away_mps2", 0.3, 0.0, 3.0);
/// At least `output_min_mps2` (checked when the task is built).
pub const HOLD_MPS2: FloatParam = FloatParam::new("hold_mps2", -1.5, -15.0, 0.0);
/// At least `output_min_mps2` (checked when the task is built).
pub const REQUEST_LOST_MPS2: FloatParam = FloatParam::new("request_lost_mps2", -2.0, -15.0, 0.0);
pub const REQUEST_TIMEOUT_MS: MsParam = MsParam::new("request_timeout_ms", 60.0, 1.0, 10_000.0);
pub const EGO_TIMEOUT_MS: MsParam = MsParam::new("ego_timeout_ms", 30.0, 1.0, 10_000.0);

/// Every parameter this task reads, as its catalog declares them.
pub const PARAMS: &[&dyn Declare] = &[
    &OUTPUT_MIN_MPS2,
    &KP,
    &KI_PER_S,
    &INTEGRAL_LIMIT_MPS2,
    &OUTPUT_MAX_MPS2,
    &FF_ROLLING_MPS2,
    &FF_AERO_PER_M,
    &STANDSTILL_SPEED_MPS,
    &PULL_AWAY_MPS2,
    &HOLD_MPS2,
    &REQUEST_LOST_MPS2,
    &REQUEST_TIMEOUT_MS,
    &EGO_TIMEOUT_MS,
];

impl Default for ControllerParams {
    fn default() -> Self {
        ControllerParams {
            kp: KP.default,
            ki_per_s: KI_PER_S.default,
            integral_limit_mps2: INTEGRAL_LIMIT_MPS2.default,
            output_min_mps2: OUTPUT_MIN_MPS2.default,
            output_max_mps2: OUTPUT_MAX_MPS2.default,
            ff_rolling_mps2: FF_ROLLING_MPS2.default,
            ff_aero_per_m: FF_AERO_PER_M.default,
            standstill_speed_mps: STANDSTILL_SPEED_MPS.default,
            pull_away_mps2: PULL_AWAY_MPS2.default,
            hold_mps2: HOLD_MPS2.default,
        }
    }
}

/// The PI + feed-forward acceleration controller (state: the integral term).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AccelController {
    pub params: ControllerParams,
    integral_mps2: f64,
}

impl AccelController {
    pub fn new(params: ControllerParams) -> Self {
        AccelController {
            params,
            integral_mps2: 0.0,
        }
    }

    pub fn integral_mps2(&self) -> f64 {
        self.integral_mps2
    }

    /// One control step of length `dt_s`. `measured` is the vehicle's measured
    /// `(speed_mps, accel_mps2)`, `None` when the vehicle bus is stale: then the command is
    /// feed-forward only (with the last known speed's drag omitted) and the integral holds.
    pub fn step(&mut self, desired_mps2: f64, measured: Option<(f64, f64)>, dt_s: f64) -> f64 {
        let p = self.params;
        let Some((speed_mps, accel_mps2)) = measured else {
            return desired_mps2.clamp(p.output_min_mps2, p.output_max_mps2);
        };
        if speed_mps < p.standstill_speed_mps && desired_mps2 < p.pull_away_mps2 {
            // Standstill management: a standing car is held by the brakes, and the integral
            // must not wind up against a wheel that cannot turn.
            self.integral_mps2 = 0.0;
            return p.hold_mps2.clamp(p.output_min_mps2, p.output_max_mps2);
        }
        let drag_mps2 = if speed_mps > 0.0 {
            p.ff_rolling_mps2 + p.ff_aero_per_m * speed_mps * speed_mps
        } else {
            0.0
        };
        let error_mps2 = desired_mps2 - accel_mps2;
        let candidate = (self.integral_mps2 + p.ki_per_s * error_mps2 * dt_s)
            .clamp(-p.integral_limit_mps2, p.integral_limit_mps2);
        let raw = desired_mps2 + drag_mps2 + p.kp * error_mps2 + candidate;
        let out = raw.clamp(p.output_min_mps2, p.output_max_mps2);
        // Conditional integration: integrate unless the output is saturated and the error
        // would push it further into saturation.
        let winding_up = (raw > p.output_max_mps2 && error_mps2 > 0.0)
            || (raw < p.output_min_mps2 && error_mps2 < 0.0);
        if !winding_up {
            self.integral_mps2 = candidate;
        }
        out
    }
}

/// The controller task.
pub struct Controller {
    request_in: Reader<AccelRequest>,
    ego_in: Reader<EgoState>,
    command_out: Writer<AccelCommand>,
    law: AccelController,
    dt_s: f64,
    request_timeout_ns: u64,
    ego_timeout_ns: u64,
    /// Desired acceleration once the planner's request has gone stale: gentle braking.
    request_lost_mps2: f64,
    /// Whether a fresh request was ever seen. Before the planner's first request (it runs
    /// later in the cycle at start) the controller holds the speed instead of braking.
    had_request: bool,
    hasher: Sha256,
    commands: u64,
    request_lost_jobs: u64,
    publish_errors: u64,
}

/// Builds the `controller` task from its manifest parameters.
pub fn build(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    let output_min_mps2 = b.get(&OUTPUT_MIN_MPS2)?;
    let p = ControllerParams {
        kp: b.get(&KP)?,
        ki_per_s: b.get(&KI_PER_S)?,
        integral_limit_mps2: b.get(&INTEGRAL_LIMIT_MPS2)?,
        output_min_mps2,
        output_max_mps2: b.get(&OUTPUT_MAX_MPS2)?,
        ff_rolling_mps2: b.get(&FF_ROLLING_MPS2)?,
        ff_aero_per_m: b.get(&FF_AERO_PER_M)?,
        standstill_speed_mps: b.get(&STANDSTILL_SPEED_MPS)?,
        pull_away_mps2: b.get(&PULL_AWAY_MPS2)?,
        hold_mps2: b.get(&FloatParam {
            min: output_min_mps2,
            ..HOLD_MPS2
        })?,
    };
    Ok(Box::new(Controller {
        request_in: b.reader(TOPIC_ACCEL_REQUEST)?,
        ego_in: b.reader(TOPIC_EGO_STATE)?,
        command_out: b.writer(TOPIC_ACCEL_COMMAND)?,
        law: AccelController::new(p),
        dt_s: params::period_s(b),
        request_timeout_ns: b.get(&REQUEST_TIMEOUT_MS)?,
        ego_timeout_ns: b.get(&EGO_TIMEOUT_MS)?,
        request_lost_mps2: b.get(&FloatParam {
            min: output_min_mps2,
            ..REQUEST_LOST_MPS2
        })?,
        hasher: Sha256::new(),
        commands: 0,
        had_request: false,
        request_lost_jobs: 0,
        publish_errors: 0,
    }))
}

impl Controller {
    /// What the digest covers for one job: the job index, then the command's bytes.
    fn fold_into_digest(&mut self, job_index: u64, command: &AccelCommand) {
        self.hasher.update(job_index.to_le_bytes());
        self.hasher.update(bytemuck::bytes_of(command));
    }
}

impl Task for Controller {
    fn step(&mut self, ctx: &StepContext) {
        let now_ns = ctx.release_ns();
        let (request_timeout_ns, ego_timeout_ns) = (self.request_timeout_ns, self.ego_timeout_ns);
        let desired = self
            .request_in
            .read(ctx)
            .filter(|r| fresh(now_ns, r.time_ns, request_timeout_ns))
            .map(|r| r.accel_mps2);
        let measured = self
            .ego_in
            .read(ctx)
            .filter(|e| fresh(now_ns, e.time_ns, ego_timeout_ns))
            .map(|e| (e.speed_mps, e.accel_mps2));
        let desired_mps2 = match desired {
            Some(a) => {
                self.had_request = true;
                a
            }
            // Feed-forward of zero acceleration: keep the current speed.
            None if !self.had_request => 0.0,
            None => {
                self.request_lost_jobs += 1;
                self.request_lost_mps2
            }
        };
        let accel_mps2 = self.law.step(desired_mps2, measured, self.dt_s);
        let command = AccelCommand {
            job_index: ctx.job_index(),
            time_ns: now_ns,
            accel_mps2,
        };
        if self.command_out.publish(ctx, |c| *c = command).is_err() {
            self.publish_errors += 1;
        }
        // The digest covers what the controller decided, whether or not the port took it,
        // so it depends on the computation alone.
        self.fold_into_digest(ctx.job_index(), &command);
        self.commands += 1;
    }

    fn finish(&mut self, report: &mut TaskReport) {
        report
            .outcome
            .push(("commands".into(), self.commands.to_string()));
        if self.request_lost_jobs > 0 {
            report.outcome.push((
                "request_lost_jobs".into(),
                self.request_lost_jobs.to_string(),
            ));
        }
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

    #[test]
    fn tracks_a_constant_request_without_steady_error() {
        // Plant: a pure lag from command to acceleration, with drag the feed-forward knows.
        let mut c = AccelController::new(ControllerParams::default());
        let (mut drive, speed, dt) = (0.0f64, 20.0f64, 0.01);
        let drag = 0.1 + 0.0003 * speed * speed;
        let mut accel = 0.0;
        for _ in 0..1000 {
            let u = c.step(1.0, Some((speed, accel)), dt);
            drive += (u - drive) * dt / 0.3;
            accel = drive - drag;
        }
        assert!((accel - 1.0).abs() < 1e-3, "{accel}");
    }

    #[test]
    fn integral_does_not_wind_up_in_saturation() {
        let p = ControllerParams::default();
        let mut c = AccelController::new(p);
        // The vehicle cannot deliver: the request stays far above what is measured.
        for _ in 0..10_000 {
            let u = c.step(p.output_max_mps2, Some((10.0, 0.0)), 0.01);
            assert_eq!(u, p.output_max_mps2);
        }
        assert!(c.integral_mps2() < p.integral_limit_mps2);
        // As soon as the request drops, the output follows without a long unwinding.
        let u = c.step(0.0, Some((10.0, 0.0)), 0.01);
        assert!(u < 1.0, "{u}");
    }

    #[test]
    fn holds_at_standstill_until_asked_to_pull_away() {
        let p = ControllerParams::default();
        let mut c = AccelController::new(p);
        assert_eq!(c.step(0.2, Some((0.0, 0.0)), 0.01), p.hold_mps2);
        assert!(c.step(1.0, Some((0.0, 0.0)), 0.01) > 1.0);
    }

    #[test]
    fn stale_vehicle_state_gives_feed_forward_only() {
        let mut c = AccelController::new(ControllerParams::default());
        assert_eq!(c.step(-2.0, None, 0.01), -2.0);
        assert_eq!(c.integral_mps2(), 0.0);
    }
}

//! The `steer_controller` task: the road-wheel angle that makes the car drive the planned
//! curvature, and the run's output digest.
//!
//! Owns: turning the planner's curvature into a steering command. The command is the
//! kinematic feed-forward (`angle = wheelbase * curvature`) plus a PI correction on the
//! curvature the car actually drives, measured by supplier A's IMU as `yaw rate / speed`,
//! with conditional integration as anti-windup. The feed-forward alone would fall short by
//! the car's understeer (a third at 25 m/s) and lag behind the rack; the loop on the yaw
//! rate removes both without knowing either. When the plan is disengaged, stale or its
//! inputs are missing it commands nothing (engaged = 0, the measured angle as the angle) and
//! forgets its integral, so it re-engages without a jump. It also owns the deployment's
//! `digest:` (with the actuator): every command it outputs, with its job index, is folded
//! into a SHA-256 that `finish` reports. It must never limit rates (the actuator does), and
//! its step never allocates, locks or does I/O (hashing 32 bytes into a fixed-size state
//! does neither).

use lane_msgs::{ImuSample, VehicleState, TOPIC_IMU, TOPIC_VEHICLE_STATE, TRUE};
use sha2::{Digest, Sha256};
use takt::task::{
    Declare, FloatParam, MsParam, Reader, StepContext, Task, TaskBuildError, TaskBuilder,
    TaskReport, Writer,
};

use crate::messages::{LateralPlan, SteerCommand, TOPIC_LATERAL_PLAN, TOPIC_STEER_COMMAND};
use crate::params::{self, fresh};

/// Gains and limits of the steering controller.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ControllerParams {
    /// The controller's model of the car: its wheelbase (and nothing else).
    pub wheelbase_m: f64,
    /// Proportional and integral gains on the curvature error (dimensionless, 1/s).
    pub kp: f64,
    pub ki_per_s: f64,
    /// The integral term never exceeds this curvature.
    pub integral_limit_per_m: f64,
    pub max_angle_rad: f64,
    /// The curvature is computed from the yaw rate at no lower speed than this.
    pub min_speed_mps: f64,
}

pub const WHEELBASE_M: FloatParam = FloatParam::new("wheelbase_m", 2.8, 1.0, 6.0);
pub const KP: FloatParam = FloatParam::new("kp", 2.0, 0.0, 20.0);
pub const KI_PER_S: FloatParam = FloatParam::new("ki_per_s", 20.0, 0.0, 100.0);
pub const INTEGRAL_LIMIT_PER_M: FloatParam =
    FloatParam::new("integral_limit_per_m", 0.004, 0.0, 0.1);
pub const MAX_ANGLE_RAD: FloatParam = FloatParam::new("max_angle_rad", 0.1, 0.01, 0.6);
pub const MIN_SPEED_MPS: FloatParam = FloatParam::new("min_speed_mps", 5.0, 0.5, 40.0);
pub const PLAN_TIMEOUT_MS: MsParam = MsParam::new("plan_timeout_ms", 25.0, 1.0, 1_000.0);
pub const SENSOR_TIMEOUT_MS: MsParam = MsParam::new("sensor_timeout_ms", 10.0, 1.0, 1_000.0);

/// Every parameter this task reads, as its catalog declares them.
pub const PARAMS: &[&dyn Declare] = &[
    &WHEELBASE_M,
    &KP,
    &KI_PER_S,
    &INTEGRAL_LIMIT_PER_M,
    &MAX_ANGLE_RAD,
    &MIN_SPEED_MPS,
    &PLAN_TIMEOUT_MS,
    &SENSOR_TIMEOUT_MS,
];

impl Default for ControllerParams {
    fn default() -> Self {
        ControllerParams {
            wheelbase_m: WHEELBASE_M.default,
            kp: KP.default,
            ki_per_s: KI_PER_S.default,
            integral_limit_per_m: INTEGRAL_LIMIT_PER_M.default,
            max_angle_rad: MAX_ANGLE_RAD.default,
            min_speed_mps: MIN_SPEED_MPS.default,
        }
    }
}

/// The PI + feed-forward steering law (state: the integral term).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SteerLaw {
    pub params: ControllerParams,
    integral_per_m: f64,
}

impl SteerLaw {
    pub fn new(params: ControllerParams) -> Self {
        SteerLaw {
            params,
            integral_per_m: 0.0,
        }
    }

    pub fn integral_per_m(&self) -> f64 {
        self.integral_per_m
    }

    /// Forgets the integral (on disengagement).
    pub fn reset(&mut self) {
        self.integral_per_m = 0.0;
    }

    /// One control step of `dt_s` towards `curvature_per_m`, with the measured yaw rate and
    /// speed; returns the road-wheel angle.
    pub fn step(
        &mut self,
        curvature_per_m: f64,
        yaw_rate_radps: f64,
        speed_mps: f64,
        dt_s: f64,
    ) -> f64 {
        let p = self.params;
        let measured = yaw_rate_radps / speed_mps.max(p.min_speed_mps);
        let error = curvature_per_m - measured;
        let candidate = (self.integral_per_m + p.ki_per_s * error * dt_s)
            .clamp(-p.integral_limit_per_m, p.integral_limit_per_m);
        let raw = p.wheelbase_m * (curvature_per_m + p.kp * error + candidate);
        let out = raw.clamp(-p.max_angle_rad, p.max_angle_rad);
        // Conditional integration: not while saturated in the direction of the error.
        let winding_up =
            (raw > p.max_angle_rad && error > 0.0) || (raw < -p.max_angle_rad && error < 0.0);
        if !winding_up {
            self.integral_per_m = candidate;
        }
        out
    }
}

/// The controller task.
pub struct SteerController {
    plan_in: Reader<LateralPlan>,
    imu_in: Reader<ImuSample>,
    state_in: Reader<VehicleState>,
    command_out: Writer<SteerCommand>,
    law: SteerLaw,
    dt_s: f64,
    plan_timeout_ns: u64,
    sensor_timeout_ns: u64,
    hasher: Sha256,
    commands: u64,
    engaged_commands: u64,
    publish_errors: u64,
}

/// Builds the `steer_controller` task from its manifest parameters.
pub fn build(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    let p = ControllerParams {
        wheelbase_m: b.get(&WHEELBASE_M)?,
        kp: b.get(&KP)?,
        ki_per_s: b.get(&KI_PER_S)?,
        integral_limit_per_m: b.get(&INTEGRAL_LIMIT_PER_M)?,
        max_angle_rad: b.get(&MAX_ANGLE_RAD)?,
        min_speed_mps: b.get(&MIN_SPEED_MPS)?,
    };
    Ok(Box::new(SteerController {
        plan_in: b.reader(TOPIC_LATERAL_PLAN)?,
        imu_in: b.reader(TOPIC_IMU)?,
        state_in: b.reader(TOPIC_VEHICLE_STATE)?,
        command_out: b.writer(TOPIC_STEER_COMMAND)?,
        law: SteerLaw::new(p),
        dt_s: params::period_s(b),
        plan_timeout_ns: b.get(&PLAN_TIMEOUT_MS)?,
        sensor_timeout_ns: b.get(&SENSOR_TIMEOUT_MS)?,
        hasher: Sha256::new(),
        commands: 0,
        engaged_commands: 0,
        publish_errors: 0,
    }))
}

impl Task for SteerController {
    fn step(&mut self, ctx: &StepContext) {
        let now_ns = ctx.release_ns();
        let (plan_timeout_ns, sensor_timeout_ns) = (self.plan_timeout_ns, self.sensor_timeout_ns);
        let curvature = self
            .plan_in
            .read(ctx)
            .filter(|p| p.engaged == TRUE && fresh(now_ns, p.time_ns, plan_timeout_ns))
            .map(|p| p.curvature_per_m);
        let yaw_rate = self
            .imu_in
            .read(ctx)
            .filter(|i| fresh(now_ns, i.time_ns, sensor_timeout_ns))
            .map(|i| i.yaw_rate_radps);
        let state = self
            .state_in
            .read(ctx)
            .filter(|s| fresh(now_ns, s.time_ns, sensor_timeout_ns))
            .map(|s| *s);
        let (angle_rad, engaged) = match (curvature, yaw_rate, state) {
            (Some(c), Some(r), Some(s)) => (self.law.step(c, r, s.speed_mps, self.dt_s), true),
            _ => {
                self.law.reset();
                (state.map_or(0.0, |s| s.steer_angle_rad), false)
            }
        };
        let command = SteerCommand {
            job_index: ctx.job_index(),
            time_ns: now_ns,
            angle_rad,
            engaged: u32::from(engaged),
            _pad: 0,
        };
        if self.command_out.publish(ctx, |c| *c = command).is_err() {
            self.publish_errors += 1;
        }
        // The digest covers what the controller decided, whether or not the port took it,
        // so it depends on the computation alone.
        self.hasher.update(ctx.job_index().to_le_bytes());
        self.hasher.update(bytemuck::bytes_of(&command));
        self.commands += 1;
        if engaged {
            self.engaged_commands += 1;
        }
    }

    fn finish(&mut self, report: &mut TaskReport) {
        report.outcome.push((
            "engaged_commands".into(),
            format!("{}/{}", self.engaged_commands, self.commands),
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
    use crate::vehicle::{Car, VehicleParams};

    /// The car's understeer and rack lag are unknown to the controller: the loop on the
    /// yaw rate makes the car drive the requested curvature all the same.
    #[test]
    fn converges_to_the_requested_curvature_despite_understeer_and_lag() {
        let car_params = VehicleParams::default();
        let mut law = SteerLaw::new(ControllerParams::default());
        let mut car = Car {
            speed_mps: 25.0,
            ..Car::default()
        };
        let target = 1.0 / 300.0;
        let mut angle = 0.0;
        for k in 0..3000 {
            // The controller every 2 ms, the car every 1 ms, like the deployment.
            if k % 2 == 0 {
                angle = law.step(
                    target,
                    car.yaw_rate_radps(&car_params),
                    car.speed_mps,
                    0.002,
                );
            }
            car.step(&car_params, angle, 0.0, 0.0, 0.001);
        }
        let driven = car.curvature_per_m(&car_params);
        assert!((driven - target).abs() < 1e-6, "{driven} vs {target}");
        // The feed-forward alone would have driven a third less.
        let feed_forward_only = 2.8 * target / (2.8 + 0.002 * 625.0);
        assert!((feed_forward_only - target).abs() > 1e-3);
        assert!(law.integral_per_m() > 0.0);
    }

    #[test]
    fn integral_does_not_wind_up_in_saturation_and_reset_forgets_it() {
        let p = ControllerParams::default();
        let mut law = SteerLaw::new(p);
        for _ in 0..10_000 {
            // Asking for far more than the limit while the car does not turn at all.
            assert_eq!(law.step(0.1, 0.0, 25.0, 0.002), p.max_angle_rad);
        }
        // Saturated in the direction of the error from the first step: never integrated.
        assert_eq!(law.integral_per_m(), 0.0);
        // Below saturation it integrates; reset forgets it.
        law.step(0.001, 0.0, 25.0, 0.002);
        assert!(law.integral_per_m() > 0.0);
        law.reset();
        assert_eq!(law.integral_per_m(), 0.0);
        assert_eq!(law.step(0.0, 0.0, 25.0, 0.002), 0.0);
    }
}

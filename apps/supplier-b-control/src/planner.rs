//! The `lateral_planner` task: the curvature the car should drive to stay in its lane.
//!
//! Owns: the lane-keeping law and the decision to steer at all. From supplier A's lane
//! estimate it asks for the lane's own curvature (with a short preview of its change, so
//! the rack's lag does not make the car cut into a clothoid late) plus a correction that
//! brings offset and heading back to the centre line as a second-order system of natural
//! frequency `omega_radps` and damping `damping`, whatever the speed: with
//! `offset'' = v^2 (curvature - lane curvature)` the gains are `omega^2 / v^2` on the offset
//! and `2 damping omega / v` on the heading. The request is limited to the lateral
//! acceleration an assist may command. It disengages (hands the wheel to the driver) when
//! the estimate is missing, stale or invalid, when it has been dead reckoning longer than
//! `max_dead_reckoning_ms` (the camera path is off, as in the `degraded` mode: the IMU alone
//! keeps the estimate good for about a second), or below a minimum speed. It must never
//! compute a steering angle (the controller does), and its step never allocates, locks or
//! does I/O.

use lane_msgs::{LaneEstimate, VehicleState, TOPIC_LANE_ESTIMATE, TOPIC_VEHICLE_STATE, TRUE};
use takt::task::{
    Declare, FloatParam, MsParam, Reader, StepContext, Task, TaskBuildError, TaskBuilder,
    TaskReport, Writer,
};

use crate::messages::{LateralPlan, TOPIC_LATERAL_PLAN};
use crate::params::fresh;

/// The lane-keeping law's gains, limits and engagement conditions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlannerParams {
    pub omega_radps: f64,
    pub damping: f64,
    /// How far ahead in time the lane's curvature is taken for the feed-forward.
    pub preview_s: f64,
    pub max_lateral_accel_mps2: f64,
    /// Below this speed the assist does not steer.
    pub min_speed_mps: f64,
    pub max_dead_reckoning_ns: u64,
    pub estimate_timeout_ns: u64,
    pub state_timeout_ns: u64,
}

pub const OMEGA_RADPS: FloatParam = FloatParam::new("omega_radps", 2.0, 0.1, 10.0);
pub const DAMPING: FloatParam = FloatParam::new("damping", 0.8, 0.1, 3.0);
pub const PREVIEW_S: FloatParam = FloatParam::new("preview_s", 0.06, 0.0, 2.0);
pub const MAX_LATERAL_ACCEL_MPS2: FloatParam =
    FloatParam::new("max_lateral_accel_mps2", 3.5, 0.5, 10.0);
pub const MIN_SPEED_MPS: FloatParam = FloatParam::new("min_speed_mps", 5.0, 0.5, 40.0);
pub const MAX_DEAD_RECKONING_MS: MsParam =
    MsParam::new("max_dead_reckoning_ms", 1000.0, 0.0, 60_000.0);
pub const ESTIMATE_TIMEOUT_MS: MsParam = MsParam::new("estimate_timeout_ms", 30.0, 1.0, 1_000.0);
pub const STATE_TIMEOUT_MS: MsParam = MsParam::new("state_timeout_ms", 20.0, 1.0, 1_000.0);

/// Every parameter this task reads, as its catalog declares them.
pub const PARAMS: &[&dyn Declare] = &[
    &OMEGA_RADPS,
    &DAMPING,
    &PREVIEW_S,
    &MAX_LATERAL_ACCEL_MPS2,
    &MIN_SPEED_MPS,
    &MAX_DEAD_RECKONING_MS,
    &ESTIMATE_TIMEOUT_MS,
    &STATE_TIMEOUT_MS,
];

impl Default for PlannerParams {
    fn default() -> Self {
        PlannerParams {
            omega_radps: OMEGA_RADPS.default,
            damping: DAMPING.default,
            preview_s: PREVIEW_S.default,
            max_lateral_accel_mps2: MAX_LATERAL_ACCEL_MPS2.default,
            min_speed_mps: MIN_SPEED_MPS.default,
            max_dead_reckoning_ns: MAX_DEAD_RECKONING_MS.default_ns(),
            estimate_timeout_ns: ESTIMATE_TIMEOUT_MS.default_ns(),
            state_timeout_ns: STATE_TIMEOUT_MS.default_ns(),
        }
    }
}

/// The lane-keeping law.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LaneKeeping {
    pub params: PlannerParams,
}

impl LaneKeeping {
    /// The curvature to drive, and the lane's own curvature ahead, for an estimate at
    /// `speed_mps`.
    pub fn curvature(&self, lane: &LaneEstimate, speed_mps: f64) -> (f64, f64) {
        let p = self.params;
        let v = speed_mps.max(p.min_speed_mps);
        let road = lane.curvature_per_m + lane.curvature_rate_per_m2 * v * p.preview_s;
        let w = p.omega_radps;
        let limit = p.max_lateral_accel_mps2 / (v * v);
        let curvature = road
            - w * w / (v * v) * lane.lateral_offset_m
            - 2.0 * p.damping * w / v * lane.heading_error_rad;
        (curvature.clamp(-limit, limit), road)
    }

    /// Whether the assist may steer on `lane` at `now_ns` and `speed_mps`.
    pub fn may_engage(&self, lane: &LaneEstimate, now_ns: u64, speed_mps: f64) -> bool {
        let p = self.params;
        lane.valid == TRUE
            && fresh(now_ns, lane.camera_time_ns, p.max_dead_reckoning_ns)
            && speed_mps >= p.min_speed_mps
    }
}

/// The planner task.
pub struct LateralPlanner {
    estimate_in: Reader<LaneEstimate>,
    state_in: Reader<VehicleState>,
    plan_out: Writer<LateralPlan>,
    law: LaneKeeping,
    jobs: u64,
    engaged_jobs: u64,
    publish_errors: u64,
}

/// Builds the `lateral_planner` task from its manifest parameters.
pub fn build(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    let p = PlannerParams {
        omega_radps: b.get(&OMEGA_RADPS)?,
        damping: b.get(&DAMPING)?,
        preview_s: b.get(&PREVIEW_S)?,
        max_lateral_accel_mps2: b.get(&MAX_LATERAL_ACCEL_MPS2)?,
        min_speed_mps: b.get(&MIN_SPEED_MPS)?,
        max_dead_reckoning_ns: b.get(&MAX_DEAD_RECKONING_MS)?,
        estimate_timeout_ns: b.get(&ESTIMATE_TIMEOUT_MS)?,
        state_timeout_ns: b.get(&STATE_TIMEOUT_MS)?,
    };
    Ok(Box::new(LateralPlanner {
        estimate_in: b.reader(TOPIC_LANE_ESTIMATE)?,
        state_in: b.reader(TOPIC_VEHICLE_STATE)?,
        plan_out: b.writer(TOPIC_LATERAL_PLAN)?,
        law: LaneKeeping { params: p },
        jobs: 0,
        engaged_jobs: 0,
        publish_errors: 0,
    }))
}

impl Task for LateralPlanner {
    fn step(&mut self, ctx: &StepContext) {
        let now_ns = ctx.release_ns();
        let p = self.law.params;
        let lane = self
            .estimate_in
            .read(ctx)
            .filter(|e| fresh(now_ns, e.time_ns, p.estimate_timeout_ns))
            .map(|e| *e);
        let speed = self
            .state_in
            .read(ctx)
            .filter(|s| fresh(now_ns, s.time_ns, p.state_timeout_ns))
            .map(|s| s.speed_mps);
        let plan = match (lane, speed) {
            (Some(lane), Some(speed)) if self.law.may_engage(&lane, now_ns, speed) => {
                let (curvature, road) = self.law.curvature(&lane, speed);
                LateralPlan {
                    time_ns: now_ns,
                    curvature_per_m: curvature,
                    road_curvature_per_m: road,
                    engaged: TRUE,
                    _pad: 0,
                }
            }
            _ => LateralPlan {
                time_ns: now_ns,
                ..LateralPlan::default()
            },
        };
        self.jobs += 1;
        if plan.engaged == TRUE {
            self.engaged_jobs += 1;
        }
        if self.plan_out.publish(ctx, |m| *m = plan).is_err() {
            self.publish_errors += 1;
        }
    }

    fn finish(&mut self, report: &mut TaskReport) {
        report.outcome.push((
            "engaged_jobs".into(),
            format!("{}/{}", self.engaged_jobs, self.jobs),
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

    fn lane(offset: f64, heading: f64, curvature: f64) -> LaneEstimate {
        LaneEstimate {
            time_ns: 0,
            lateral_offset_m: offset,
            heading_error_rad: heading,
            curvature_per_m: curvature,
            curvature_rate_per_m2: 0.0,
            camera_time_ns: 0,
            valid: TRUE,
            dead_reckoning: 0,
        }
    }

    #[test]
    fn steers_back_towards_the_centre_and_follows_the_bend() {
        let law = LaneKeeping {
            params: PlannerParams::default(),
        };
        // Left of centre: steer right; pointing left: steer right; in a bend: its curvature.
        assert!(law.curvature(&lane(0.5, 0.0, 0.0), 25.0).0 < 0.0);
        assert!(law.curvature(&lane(0.0, 0.02, 0.0), 25.0).0 < 0.0);
        assert_eq!(law.curvature(&lane(0.0, 0.0, 0.003), 25.0), (0.003, 0.003));
        // Never more than the lateral acceleration limit.
        let (c, _) = law.curvature(&lane(-1.5, -0.1, 0.004), 25.0);
        assert!((c * 25.0 * 25.0 - 3.5).abs() < 1e-12, "{c}");
    }

    #[test]
    fn hands_back_when_dead_reckoning_too_long_or_too_slow() {
        let law = LaneKeeping {
            params: PlannerParams::default(),
        };
        let mut e = lane(0.0, 0.0, 0.0);
        e.camera_time_ns = 1_000_000_000;
        assert!(law.may_engage(&e, 1_900_000_000, 25.0));
        assert!(!law.may_engage(&e, 2_100_000_000, 25.0));
        assert!(!law.may_engage(&e, 1_100_000_000, 3.0));
        e.valid = 0;
        assert!(!law.may_engage(&e, 1_100_000_000, 25.0));
    }
}

//! The `vehicle_world` task: the simulated car on its road, its driver, and the judge of the
//! run.
//!
//! Owns: the ground truth. Each job advances the car to the job's logical release in whole
//! steps of its period, holding the steering source it took from the newest applied
//! command (zero-order hold, as a real rack holds its last command), publishes the truth
//! for supplier A's sensor models and the vehicle's bus signals, and then takes the newest
//! applied command for the next step. When the actuator is not steering (the assist is
//! disengaged or not released, as in the `standby` mode, or its command is stale) a driver
//! steers: a curvature feed-forward plus a gentle correction of offset and heading, the
//! driver a lane-keeping assist hands the wheel back to. It also keeps the outcome of the
//! run: the largest lateral offset (over the whole run, and after the first `settle_ms` in
//! which the car is brought from its initial offset to the centre line), whether the car
//! left its lane, and who steered how long; `finish` reports these as `outcome:` lines.
//!
//! Time is logical only: the simulated instant is the job's release, never a clock reading,
//! so a run's trajectory is the same in real and simulated time. It must never look at
//! other tasks' internals: it sees the rest of the system only through its ports. The step
//! does not allocate, lock or do I/O.

use lane_msgs::{VehicleState, VehicleTruth, TOPIC_VEHICLE_STATE, TOPIC_VEHICLE_TRUTH, TRUE};
use takt::task::{
    Declare, FloatParam, MsParam, Reader, StepContext, Task, TaskBuildError, TaskBuilder,
    TaskReport, Writer,
};

use crate::messages::{SteerApplied, TOPIC_STEER_APPLIED};
use crate::params::{fresh, ns_to_s};
use crate::road::Road;
use crate::vehicle::{self, Car, VehicleParams};

/// The longest stretch of missed releases (skipped jobs) the world integrates through.
/// Beyond it, the state jumps in time instead: one job must stay bounded in cost.
pub const MAX_CATCH_UP_STEPS: u64 = 1000;

/// The driver who steers whenever the assist does not: a second-order approach to the
/// lane's centre with natural frequency `omega_radps` and damping `damping`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DriverParams {
    pub omega_radps: f64,
    pub damping: f64,
}

/// The initial situation, the physics and the disturbance of a simulated run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WorldConfig {
    pub vehicle: VehicleParams,
    pub driver: DriverParams,
    /// Scales the road's bends (1: the default road of [`crate::road`]).
    pub curve_scale: f64,
    pub speed_mps: f64,
    /// Where the car starts: left of the centre line, and turned left of the lane.
    pub initial_offset_m: f64,
    pub initial_heading_rad: f64,
    pub lane_width_m: f64,
    pub vehicle_width_m: f64,
    /// A crosswind gust pushes the car sideways at `gust_mps` (left: positive) from
    /// `gust_start_ns` after the start for `gust_duration_ns`.
    pub gust_mps: f64,
    pub gust_start_ns: u64,
    pub gust_duration_ns: u64,
    /// Step length: the world task's period.
    pub step_ns: u64,
}

pub const LANE_WIDTH_M: FloatParam = FloatParam::new("lane_width_m", 3.5, 2.5, 5.0);
pub const GUST_START_MS: MsParam = MsParam::new("gust_start_ms", 6000.0, 0.0, 3_600_000.0);
pub const GUST_DURATION_MS: MsParam = MsParam::new("gust_duration_ms", 1500.0, 0.0, 3_600_000.0);
pub const DRIVER_OMEGA_RADPS: FloatParam = FloatParam::new("driver_omega_radps", 1.0, 0.1, 10.0);
pub const DRIVER_DAMPING: FloatParam = FloatParam::new("driver_damping", 0.8, 0.1, 3.0);
pub const CURVE_SCALE: FloatParam = FloatParam::new("curve_scale", 1.0, 0.0, 3.0);
pub const SPEED_MPS: FloatParam = FloatParam::new("speed_mps", 25.0, 1.0, 60.0);
pub const INITIAL_HEADING_RAD: FloatParam = FloatParam::new("initial_heading_rad", 0.0, -0.2, 0.2);
pub const APPLIED_TIMEOUT_MS: MsParam = MsParam::new("applied_timeout_ms", 20.0, 1.0, 1_000.0);
pub const SETTLE_MS: MsParam = MsParam::new("settle_ms", 3000.0, 0.0, 3_600_000.0);

/// Within half the lane width of the centre (checked when the task is built).
pub const INITIAL_OFFSET_M: FloatParam = FloatParam::new("initial_offset_m", 0.3, -2.5, 2.5);
/// At most `lane_width_m` (checked when the task is built).
pub const VEHICLE_WIDTH_M: FloatParam = FloatParam::new("vehicle_width_m", 1.8, 1.0, 5.0);
pub const GUST_MPS: FloatParam = FloatParam::new("gust_mps", 0.2, -3.0, 3.0);

/// Every parameter this task reads, as its catalog declares them.
pub const PARAMS: &[&dyn Declare] = &[
    &LANE_WIDTH_M,
    &GUST_START_MS,
    &GUST_DURATION_MS,
    &DRIVER_OMEGA_RADPS,
    &DRIVER_DAMPING,
    &CURVE_SCALE,
    &SPEED_MPS,
    &INITIAL_HEADING_RAD,
    &APPLIED_TIMEOUT_MS,
    &SETTLE_MS,
    &INITIAL_OFFSET_M,
    &VEHICLE_WIDTH_M,
    &GUST_MPS,
    &vehicle::WHEELBASE_M,
    &vehicle::UNDERSTEER_RAD_PER_MPS2,
    &vehicle::STEER_LAG_S,
    &vehicle::STEER_MAX_RAD,
];

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            vehicle: VehicleParams::default(),
            driver: DriverParams {
                omega_radps: DRIVER_OMEGA_RADPS.default,
                damping: DRIVER_DAMPING.default,
            },
            curve_scale: CURVE_SCALE.default,
            speed_mps: SPEED_MPS.default,
            initial_offset_m: INITIAL_OFFSET_M.default,
            initial_heading_rad: INITIAL_HEADING_RAD.default,
            lane_width_m: LANE_WIDTH_M.default,
            vehicle_width_m: VEHICLE_WIDTH_M.default,
            gust_mps: GUST_MPS.default,
            gust_start_ns: GUST_START_MS.default_ns(),
            gust_duration_ns: 1_000_000_000,
            step_ns: 1_000_000,
        }
    }
}

/// Who turns the rack during a step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Steering {
    /// The actuator, to this road-wheel angle.
    Assist(f64),
    /// The simulated driver.
    Driver,
}

/// The car, its road and the simulated time: the pure simulation the world task wraps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WorldSim {
    pub config: WorldConfig,
    pub road: Road,
    pub car: Car,
    /// The instant the state describes.
    pub time_ns: u64,
    /// The instant the simulation started (the world's first release).
    pub start_ns: u64,
}

impl WorldSim {
    pub fn new(config: WorldConfig, time_ns: u64) -> Self {
        let road = Road::new(config.curve_scale);
        let car = Car {
            distance_m: 0.0,
            offset_m: config.initial_offset_m,
            heading_rad: config.initial_heading_rad,
            steer_rad: config.vehicle.steer_for(road.at(0.0).0, config.speed_mps),
            speed_mps: config.speed_mps,
        };
        WorldSim {
            config,
            road,
            car,
            time_ns,
            start_ns: time_ns,
        }
    }

    /// The driver's road-wheel angle for the current state.
    pub fn driver_steer_rad(&self) -> f64 {
        let c = &self.config;
        let v = c.speed_mps.max(1.0);
        let (road_curvature, _) = self.road.at(self.car.distance_m);
        let w = c.driver.omega_radps;
        let curvature = road_curvature
            - w * w / (v * v) * self.car.offset_m
            - 2.0 * c.driver.damping * w / v * self.car.heading_rad;
        c.vehicle.steer_for(curvature, v)
    }

    fn drift_mps(&self) -> f64 {
        let c = &self.config;
        let since_start_ns = self.time_ns - self.start_ns;
        let gust = since_start_ns >= c.gust_start_ns
            && since_start_ns - c.gust_start_ns < c.gust_duration_ns;
        if gust {
            c.gust_mps
        } else {
            0.0
        }
    }

    /// Advances to `t_ns` in whole steps with `steering`. Never goes back in time;
    /// integrates at most [`MAX_CATCH_UP_STEPS`] steps and jumps the rest.
    pub fn advance_to(&mut self, t_ns: u64, steering: Steering) {
        let step_ns = self.config.step_ns;
        let dt_s = ns_to_s(step_ns);
        let mut steps = 0;
        while self.time_ns + step_ns <= t_ns && steps < MAX_CATCH_UP_STEPS {
            let command = match steering {
                Steering::Assist(angle) => angle,
                Steering::Driver => self.driver_steer_rad(),
            };
            let (road_curvature, _) = self.road.at(self.car.distance_m);
            let drift = self.drift_mps();
            self.car
                .step(&self.config.vehicle, command, road_curvature, drift, dt_s);
            self.time_ns += step_ns;
            steps += 1;
        }
        self.time_ns = self.time_ns.max(t_ns);
    }

    pub fn truth(&self) -> VehicleTruth {
        let p = &self.config.vehicle;
        let (curvature, rate) = self.road.at(self.car.distance_m);
        let yaw_rate = self.car.yaw_rate_radps(p);
        VehicleTruth {
            time_ns: self.time_ns,
            distance_m: self.car.distance_m,
            lateral_offset_m: self.car.offset_m,
            heading_error_rad: self.car.heading_rad,
            road_curvature_per_m: curvature,
            road_curvature_rate_per_m2: rate,
            lane_width_m: self.config.lane_width_m,
            speed_mps: self.car.speed_mps,
            yaw_rate_radps: yaw_rate,
            lateral_accel_mps2: yaw_rate * self.car.speed_mps,
        }
    }

    /// The largest offset at which the car is still inside its lane's markings.
    pub fn lane_margin_m(&self) -> f64 {
        (self.config.lane_width_m - self.config.vehicle_width_m) / 2.0
    }
}

/// The outcome of a run so far.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutcomeTracker {
    /// The first part of the run, in which the assist brings the car from its initial
    /// offset to the centre line, is left out of the settled figures.
    pub settle_ns: u64,
    pub max_abs_offset_m: f64,
    /// The largest offset after `settle_ns`: what bends and the gust cost.
    pub settled_max_abs_offset_m: f64,
    sum_sq_offset: f64,
    pub samples: u64,
    /// The first instant (since the start) the car's body crossed a marking.
    pub left_lane_after_ns: Option<u64>,
    pub assist_samples: u64,
    pub max_abs_lateral_accel_mps2: f64,
    pub distance_m: f64,
    pub elapsed_ns: u64,
}

impl Default for OutcomeTracker {
    fn default() -> Self {
        OutcomeTracker {
            settle_ns: SETTLE_MS.default_ns(),
            max_abs_offset_m: 0.0,
            settled_max_abs_offset_m: 0.0,
            sum_sq_offset: 0.0,
            samples: 0,
            left_lane_after_ns: None,
            assist_samples: 0,
            max_abs_lateral_accel_mps2: 0.0,
            distance_m: 0.0,
            elapsed_ns: 0,
        }
    }
}

impl OutcomeTracker {
    /// Takes one sample of the run (every world job).
    pub fn observe(&mut self, sim: &WorldSim, assist: bool) {
        let t = sim.truth();
        let offset = t.lateral_offset_m.abs();
        self.elapsed_ns = sim.time_ns - sim.start_ns;
        if offset > self.max_abs_offset_m {
            self.max_abs_offset_m = offset;
        }
        if self.elapsed_ns >= self.settle_ns && offset > self.settled_max_abs_offset_m {
            self.settled_max_abs_offset_m = offset;
        }
        if offset > sim.lane_margin_m() && self.left_lane_after_ns.is_none() {
            self.left_lane_after_ns = Some(self.elapsed_ns);
        }
        let accel = t.lateral_accel_mps2.abs();
        if accel > self.max_abs_lateral_accel_mps2 {
            self.max_abs_lateral_accel_mps2 = accel;
        }
        self.sum_sq_offset += t.lateral_offset_m * t.lateral_offset_m;
        self.samples += 1;
        if assist {
            self.assist_samples += 1;
        }
        self.distance_m = t.distance_m;
    }

    pub fn rms_offset_m(&self) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            (self.sum_sq_offset / self.samples as f64).sqrt()
        }
    }

    /// The `outcome:` lines of the run.
    pub fn conclude(&self, sim: &WorldSim) -> Vec<(String, String)> {
        let c = &sim.config;
        let margin = sim.lane_margin_m();
        let left_lane = match self.left_lane_after_ns {
            None => format!(
                "false (the car's body stayed within {margin:.2} m of the centre line: half the {:.2} m lane minus half the {:.2} m car)",
                c.lane_width_m, c.vehicle_width_m
            ),
            Some(ns) => format!(
                "true (beyond {margin:.2} m from the centre line {:.3} s after the start)",
                ns_to_s(ns)
            ),
        };
        let assist_pct = if self.samples == 0 {
            0.0
        } else {
            100.0 * self.assist_samples as f64 / self.samples as f64
        };
        vec![
            (
                "max_abs_lateral_offset_m".into(),
                format!("{:.3}", self.max_abs_offset_m),
            ),
            (
                "settled_max_abs_lateral_offset_m".into(),
                if self.elapsed_ns >= self.settle_ns {
                    format!(
                        "{:.3} (after the first {:.1} s)",
                        self.settled_max_abs_offset_m,
                        ns_to_s(self.settle_ns)
                    )
                } else {
                    format!(
                        "- (the run is shorter than {:.1} s)",
                        ns_to_s(self.settle_ns)
                    )
                },
            ),
            (
                "rms_lateral_offset_m".into(),
                format!("{:.3}", self.rms_offset_m()),
            ),
            ("left_lane".into(), left_lane),
            (
                "assist_steering".into(),
                format!(
                    "{assist_pct:.1}% of {:.3} s (the driver steered the rest)",
                    ns_to_s(self.elapsed_ns)
                ),
            ),
            (
                "max_abs_lateral_accel_mps2".into(),
                format!("{:.2}", self.max_abs_lateral_accel_mps2),
            ),
            ("distance_m".into(), format!("{:.1}", self.distance_m)),
        ]
    }
}

/// The world task.
pub struct VehicleWorld {
    applied_in: Reader<SteerApplied>,
    truth_out: Writer<VehicleTruth>,
    state_out: Writer<VehicleState>,
    sim: WorldSim,
    started: bool,
    steering: Steering,
    applied_timeout_ns: u64,
    tracker: OutcomeTracker,
    publish_errors: u64,
}

/// Builds the `vehicle_world` task from its manifest parameters.
pub fn build(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    let step_ns = b.timing().period_ns;
    let lane_width_m = b.get(&LANE_WIDTH_M)?;
    let gust_start_ns = b.get(&GUST_START_MS)?;
    let gust_duration_ns = b.get(&GUST_DURATION_MS)?;
    let config = WorldConfig {
        vehicle: VehicleParams {
            wheelbase_m: b.get(&vehicle::WHEELBASE_M)?,
            understeer_rad_per_mps2: b.get(&vehicle::UNDERSTEER_RAD_PER_MPS2)?,
            steer_lag_s: b.get(&vehicle::STEER_LAG_S)?,
            steer_max_rad: b.get(&vehicle::STEER_MAX_RAD)?,
        },
        driver: DriverParams {
            omega_radps: b.get(&DRIVER_OMEGA_RADPS)?,
            damping: b.get(&DRIVER_DAMPING)?,
        },
        curve_scale: b.get(&CURVE_SCALE)?,
        speed_mps: b.get(&SPEED_MPS)?,
        initial_offset_m: b.get(&FloatParam {
            min: -lane_width_m / 2.0,
            max: lane_width_m / 2.0,
            ..INITIAL_OFFSET_M
        })?,
        initial_heading_rad: b.get(&INITIAL_HEADING_RAD)?,
        lane_width_m,
        vehicle_width_m: b.get(&FloatParam {
            max: lane_width_m,
            ..VEHICLE_WIDTH_M
        })?,
        gust_mps: b.get(&GUST_MPS)?,
        gust_start_ns,
        gust_duration_ns,
        step_ns,
    };
    let sim = WorldSim::new(config, 0);
    Ok(Box::new(VehicleWorld {
        applied_in: b.reader(TOPIC_STEER_APPLIED)?,
        truth_out: b.writer(TOPIC_VEHICLE_TRUTH)?,
        state_out: b.writer(TOPIC_VEHICLE_STATE)?,
        sim,
        started: false,
        steering: Steering::Driver,
        applied_timeout_ns: b.get(&APPLIED_TIMEOUT_MS)?,
        tracker: OutcomeTracker {
            settle_ns: b.get(&SETTLE_MS)?,
            ..OutcomeTracker::default()
        },
        publish_errors: 0,
    }))
}

impl Task for VehicleWorld {
    fn step(&mut self, ctx: &StepContext) {
        let now_ns = ctx.release_ns();
        if self.started {
            self.sim.advance_to(now_ns, self.steering);
        } else {
            // The simulation starts at the first release, whatever the epoch offset.
            self.sim = WorldSim::new(self.sim.config, now_ns);
            self.started = true;
        }
        self.tracker
            .observe(&self.sim, matches!(self.steering, Steering::Assist(_)));
        let truth = self.sim.truth();
        let state = VehicleState {
            time_ns: truth.time_ns,
            speed_mps: truth.speed_mps,
            steer_angle_rad: self.sim.car.steer_rad,
        };
        if self.truth_out.publish(ctx, |t| *t = truth).is_err() {
            self.publish_errors += 1;
        }
        if self.state_out.publish(ctx, |s| *s = state).is_err() {
            self.publish_errors += 1;
        }
        // The newest applied command steers the next step, if the actuator is steering and
        // its command is fresh; otherwise the driver has the wheel.
        let timeout_ns = self.applied_timeout_ns;
        self.steering = match self.applied_in.read(ctx) {
            Some(a) if a.active == TRUE && fresh(now_ns, a.time_ns, timeout_ns) => {
                Steering::Assist(a.angle_rad)
            }
            _ => Steering::Driver,
        };
    }

    fn finish(&mut self, report: &mut TaskReport) {
        report.outcome = self.tracker.conclude(&self.sim);
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

    #[test]
    fn advance_integrates_whole_steps_and_never_goes_back() {
        let mut sim = WorldSim::new(WorldConfig::default(), 5 * MS);
        sim.advance_to(15 * MS + MS / 2, Steering::Assist(0.0));
        assert_eq!(sim.time_ns, 15 * MS + MS / 2);
        // Ten 1 ms steps at 25 m/s on the straight.
        assert!(
            (sim.car.distance_m - 0.25).abs() < 1e-12,
            "{}",
            sim.car.distance_m
        );
        sim.advance_to(MS, Steering::Driver);
        assert_eq!(sim.time_ns, 15 * MS + MS / 2);
    }

    #[test]
    fn the_driver_keeps_the_lane_through_every_bend() {
        let config = WorldConfig {
            gust_mps: 0.0,
            ..WorldConfig::default()
        };
        let mut sim = WorldSim::new(config, 0);
        let mut tracker = OutcomeTracker::default();
        // 30 s: one and a half laps of the 500 m road.
        for k in 1..=30_000u64 {
            sim.advance_to(k * MS, Steering::Driver);
            tracker.observe(&sim, false);
        }
        assert!(tracker.left_lane_after_ns.is_none(), "{tracker:?}");
        assert!(tracker.distance_m > 749.0, "{}", tracker.distance_m);
        assert!(
            tracker.max_abs_lateral_accel_mps2 > 2.0,
            "the bends were driven"
        );
        assert_eq!(tracker.assist_samples, 0);
    }

    #[test]
    fn a_straight_rack_leaves_the_lane_in_the_first_bend_and_the_judge_says_so() {
        let mut sim = WorldSim::new(WorldConfig::default(), 0);
        let mut tracker = OutcomeTracker::default();
        for k in 1..=10_000u64 {
            sim.advance_to(k * MS, Steering::Assist(0.0));
            tracker.observe(&sim, true);
        }
        let after = tracker.left_lane_after_ns.expect("left the lane");
        // The bend starts 60 m (2.4 s) in.
        assert!(after > 2_400 * MS, "{after}");
        let lines = tracker.conclude(&sim);
        let left = lines.iter().find(|(k, _)| k == "left_lane").unwrap();
        assert!(left.1.starts_with("true"), "{lines:?}");
        let assist = lines.iter().find(|(k, _)| k == "assist_steering").unwrap();
        assert!(assist.1.starts_with("100.0%"), "{lines:?}");
        let settled = lines
            .iter()
            .find(|(k, _)| k == "settled_max_abs_lateral_offset_m")
            .unwrap();
        assert!(settled.1.ends_with("(after the first 3.0 s)"), "{lines:?}");
        assert!(tracker.settled_max_abs_offset_m > sim.lane_margin_m());
    }
}

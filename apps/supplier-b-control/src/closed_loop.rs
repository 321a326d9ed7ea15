//! Supplier B's control design proven without ports and without supplier A: the world,
//! planner, controller and actuator cores run as plain functions, with an ideal lane sensor
//! standing in for supplier A's perception (the true lane, 20 ms late: about what camera,
//! detection and fusion add in the deployment) and an ideal IMU (the true yaw rate, 1 ms
//! late). Each task runs at its period in `config/lanekeep.toml` and its output is seen by
//! the next task one LET window later, so the loop's delays are those of the deployment.
//! The deployment itself, with supplier A's real sensors, is tested in
//! `verification/tests/lanekeep.rs`, which may link both suppliers; this crate may not.

use lane_msgs::{LaneEstimate, VehicleTruth, TRUE};

use crate::actuator::{ActuatorParams, Limiter};
use crate::controller::{ControllerParams, SteerLaw};
use crate::messages::SteerCommand;
use crate::planner::{LaneKeeping, PlannerParams};
use crate::world::{OutcomeTracker, Steering, WorldConfig, WorldSim};

const MS: u64 = 1_000_000;

/// A topic as LET makes it: every sample with the instant it becomes visible, and reads
/// that see the newest sample visible at the reader's release.
struct Mailbox<T: Copy>(Vec<(u64, T)>);

impl<T: Copy> Mailbox<T> {
    fn publish(&mut self, visible_at_ns: u64, value: T) {
        self.0.push((visible_at_ns, value));
    }
    fn read(&self, release_ns: u64) -> Option<T> {
        self.0
            .iter()
            .rev()
            .find(|(at, _)| *at <= release_ns)
            .map(|(_, v)| *v)
    }
}

/// Runs the loop for `duration_ms` from `config`; returns the outcome and the offsets at
/// every millisecond.
fn run(config: WorldConfig, duration_ms: u64) -> (OutcomeTracker, Vec<f64>) {
    let mut sim = WorldSim::new(config, 0);
    let law = LaneKeeping {
        params: PlannerParams::default(),
    };
    let mut steer = SteerLaw::new(ControllerParams::default());
    let mut limiter = Limiter {
        params: ActuatorParams::default(),
        angle_rad: 0.0,
    };
    let mut tracker = OutcomeTracker::default();
    let mut truths: Vec<VehicleTruth> = Vec::new();
    let mut plan = Mailbox::<f64>(Vec::new());
    let mut command = Mailbox::<SteerCommand>(Vec::new());
    let mut applied = Mailbox::<Option<f64>>(Vec::new());
    let mut steering = Steering::Driver;
    let mut offsets = Vec::new();
    for t_ms in 0..duration_ms {
        let t = t_ms * MS;
        sim.advance_to(t, steering);
        tracker.observe(&sim, matches!(steering, Steering::Assist(_)));
        offsets.push(sim.car.offset_m);
        truths.push(sim.truth());
        if t_ms % 10 == 0 && t_ms >= 20 {
            let seen = truths[(t_ms - 20) as usize];
            let lane = LaneEstimate {
                time_ns: t,
                lateral_offset_m: seen.lateral_offset_m,
                heading_error_rad: seen.heading_error_rad,
                curvature_per_m: seen.road_curvature_per_m,
                curvature_rate_per_m2: seen.road_curvature_rate_per_m2,
                camera_time_ns: seen.time_ns,
                valid: TRUE,
                dead_reckoning: 0,
            };
            plan.publish(t + 2 * MS, law.curvature(&lane, seen.speed_mps).0);
        }
        if t_ms % 2 == 0 {
            let visible_plan = plan.read(t);
            let yaw_rate = truths[t_ms.saturating_sub(1) as usize].yaw_rate_radps;
            let c = match visible_plan {
                Some(curvature) => SteerCommand {
                    time_ns: t,
                    angle_rad: steer.step(curvature, yaw_rate, config.speed_mps, 0.002),
                    engaged: TRUE,
                    ..SteerCommand::default()
                },
                None => SteerCommand {
                    time_ns: t,
                    angle_rad: sim.car.steer_rad,
                    ..SteerCommand::default()
                },
            };
            command.publish(t + 2 * MS, c);
        }
        if t_ms % 5 == 0 {
            let visible = command.read(t);
            let (angle, active) = limiter.apply(visible.as_ref(), 0.005);
            applied.publish(t + 5 * MS, active.then_some(angle));
        }
        // The world's next job (at t + 1 ms) takes the newest applied command visible then
        // and holds it over the step after.
        steering = match applied.read(t + MS).flatten() {
            Some(angle) => Steering::Assist(angle),
            None => Steering::Driver,
        };
    }
    (tracker, offsets)
}

#[test]
fn the_assist_centres_the_car_and_keeps_it_centred_through_bends_and_a_gust() {
    let config = WorldConfig::default();
    // 40 s: the whole 500 m road (straight, left bend, S, right bend) twice, and the gust
    // (0.2 m/s sideways from 6 s to 7 s).
    let (tracker, offsets) = run(config, 40_000);
    assert!(tracker.left_lane_after_ns.is_none(), "{tracker:?}");
    assert!(
        tracker.assist_samples > 39_900,
        "{}",
        tracker.assist_samples
    );
    assert!(
        tracker.max_abs_lateral_accel_mps2 > 2.0,
        "the bends were driven"
    );
    // From 0.3 m off centre to within 2 cm in 2 s (omega 2 rad/s, damping 0.8), on the
    // straight before the first bend.
    assert!(offsets[2_000].abs() < 0.02, "{}", offsets[2_000]);
    // The gust would push the car 0.2 m aside; the assist holds it to less than that and
    // brings it back within 2 s.
    let gust = &offsets[6_000..9_000];
    let worst_gust = gust.iter().fold(0.0f64, |m, o| m.max(o.abs()));
    assert!(worst_gust > 0.05 && worst_gust < 0.16, "{worst_gust}");
    assert!(offsets[9_000].abs() < 0.01, "{}", offsets[9_000]);
    // Bends, with the lane's curvature fed forward and its change previewed, move the car
    // by less than 2 cm.
    let worst_bends = offsets[2_000..6_000]
        .iter()
        .chain(&offsets[9_000..])
        .fold(0.0f64, |m, o| m.max(o.abs()));
    assert!(worst_bends < 0.02, "{worst_bends}");
}

#[test]
fn without_the_assist_the_same_car_leaves_the_lane() {
    // The check above can fail: with the controller's gain and feed-forward gone the car
    // drives straight into the first bend's outside.
    let mut sim = WorldSim::new(WorldConfig::default(), 0);
    let mut tracker = OutcomeTracker::default();
    for t_ms in 0..10_000u64 {
        sim.advance_to(t_ms * MS, Steering::Assist(0.0));
        tracker.observe(&sim, true);
    }
    assert!(tracker.left_lane_after_ns.is_some());
}

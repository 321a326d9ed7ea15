#![deny(unsafe_code)]
//! Supplier B of the lane-keeping deployment (`config/lanekeep.toml`): the `control` app,
//! built only on takt's public API and the shared interface crate `lane-msgs`.
//!
//! Owns: four tasks and the three message types that stay inside this app, registered by
//! [`register`] under the names the manifest uses. It must never link supplier A (the
//! `perception` app): everything it knows of A is the messages of `lane-msgs`. It must
//! never reach around takt either: no raw memory access, no threads, no clocks, no I/O in a
//! step; tasks see each other only through their ports.
//!
//! ```text
//!    (supplier A) lane_fusion ─ lane_estimate ─► lateral_planner
//!                                                     │ lateral_plan
//!    (supplier A) imu ─ imu ──────────────────► steer_controller ◄─ vehicle_state ─┐
//!                                                     │ steer_command               │
//!                                                     ▼                             │
//!                                               steer_actuator                     │
//!                                                     │ steer_applied               │
//!                                                     ▼                             │
//!                                               vehicle_world ──────────────────────┘
//!                                                     │ vehicle_truth, vehicle_state
//!                                                     ▼
//!                                     (supplier A) imu, lane_camera, lane_fusion
//! ```
//!
//! * [`world`] (1 ms): the car on a curved road with a crosswind gust, the driver who steers
//!   whenever the assist does not, and the judge of the run ([`vehicle`], [`road`]).
//! * [`planner`] (10 ms): the lane-keeping law, and the decision to steer at all.
//! * [`controller`] (2 ms): curvature to road-wheel angle, closed on the IMU's yaw rate;
//!   owns most of the run's digest.
//! * [`actuator`] (5 ms): range and rate limits; hands the wheel to the driver when the
//!   command is stale or disengaged.
//!
//! Every task's core is a plain struct with a pure method, tested without ports; the task
//! structs only move data between those cores and their ports. All arithmetic is `f64`
//! with `+ - * /` in a fixed order on logical time (job releases), so the outputs are
//! bit-identical across runs, clocks and schedulings.

pub mod actuator;
pub mod controller;
pub mod messages;
pub mod params;
pub mod planner;
pub mod road;
pub mod trig;
pub mod vehicle;
pub mod world;

#[cfg(test)]
mod closed_loop;

use lane_msgs::{
    ImuSample, LaneEstimate, VehicleState, VehicleTruth, TOPIC_IMU, TOPIC_LANE_ESTIMATE,
    TOPIC_VEHICLE_STATE, TOPIC_VEHICLE_TRUTH,
};
use takt::task::{Ports, Registry};

use messages::{
    LateralPlan, SteerApplied, SteerCommand, TOPIC_LATERAL_PLAN, TOPIC_STEER_APPLIED,
    TOPIC_STEER_COMMAND,
};

/// The `control` app's tasks, as its executable `lane-control` hosts them.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    register(&mut r);
    r
}

/// Adds the `control` app's tasks to `r`. Each task declares exactly the ports its
/// constructor opens and the parameters it reads. A program that runs the whole deployment in one process (the
/// verification suite) registers both suppliers' tasks into one registry this way.
pub fn register(r: &mut Registry) {
    r.task(
        "vehicle_world",
        Ports::new()
            .reads::<SteerApplied>(TOPIC_STEER_APPLIED)
            .writes::<VehicleTruth>(TOPIC_VEHICLE_TRUTH)
            .writes::<VehicleState>(TOPIC_VEHICLE_STATE)
            .declare_all(world::PARAMS),
        world::build,
    )
    .task(
        "lateral_planner",
        Ports::new()
            .reads::<LaneEstimate>(TOPIC_LANE_ESTIMATE)
            .reads::<VehicleState>(TOPIC_VEHICLE_STATE)
            .writes::<LateralPlan>(TOPIC_LATERAL_PLAN)
            .declare_all(planner::PARAMS),
        planner::build,
    )
    .task(
        "steer_controller",
        Ports::new()
            .reads::<LateralPlan>(TOPIC_LATERAL_PLAN)
            .reads::<ImuSample>(TOPIC_IMU)
            .reads::<VehicleState>(TOPIC_VEHICLE_STATE)
            .writes::<SteerCommand>(TOPIC_STEER_COMMAND)
            .declare_all(controller::PARAMS),
        controller::build,
    )
    .task(
        "steer_actuator",
        Ports::new()
            .reads::<SteerCommand>(TOPIC_STEER_COMMAND)
            .writes::<SteerApplied>(TOPIC_STEER_APPLIED)
            .declare_all(actuator::PARAMS),
        actuator::build,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_declares_the_control_tasks_and_their_types() {
        let r = registry();
        let c = r.catalog();
        let tasks: Vec<&str> = c.tasks.keys().map(String::as_str).collect();
        assert_eq!(
            tasks,
            [
                "lateral_planner",
                "steer_actuator",
                "steer_controller",
                "vehicle_world"
            ]
        );
        let types: Vec<&str> = c.types.keys().copied().collect();
        assert_eq!(
            types,
            [
                "ImuSample",
                "LaneEstimate",
                "LateralPlan",
                "SteerApplied",
                "SteerCommand",
                "VehicleState",
                "VehicleTruth"
            ]
        );
    }
}

#![deny(unsafe_code)]
//! Supplier A of the lane-keeping deployment (`config/lanekeep.toml`): the `perception`
//! app, built only on takt's public API and the shared interface crate `lane-msgs`.
//!
//! Owns: four tasks and the two message types that stay inside this app, registered by
//! [`register`] under the names the manifest uses. It must never link supplier B (the
//! `control` app): everything it knows of B is the messages of `lane-msgs`. It must never
//! reach around takt either: no raw memory access, no threads, no clocks, no I/O in a step;
//! tasks see each other only through their ports.
//!
//! ```text
//!  (supplier B)                                       (supplier A: this crate)
//!  vehicle_world ─ vehicle_truth ─┬─► imu ─ imu ───────────────┬──────────► (B) steer_controller
//!                                 │                             ▼
//!                                 └─► lane_camera ─ lane_image ─► lane_detect ─ lane_detection
//!                                                                               ▼
//!  vehicle_world ─ vehicle_state ─────────────────────────────────────────► lane_fusion
//!                                                                               │ lane_estimate
//!                                                                               ▼
//!                                                                   (B) lateral_planner
//! ```
//!
//! * [`imu`] (1 ms): yaw rate with bias and noise, integrated to a yaw angle.
//! * [`camera`] (10 ms): renders a 16 KiB bird's-eye frame of the lane markings.
//! * [`detect`] (10 ms): finds the markings and fits the lane as a cubic.
//! * [`fusion`] (5 ms): dead reckoning on the IMU and wheel speed between delayed camera
//!   measurements; the lane estimate supplier B steers by.
//!
//! Every task's core is a plain struct with a pure method, tested without ports; the task
//! structs only move data between those cores and their ports. All arithmetic is `f64` in a
//! fixed order on logical time (job releases), with seeded generators, so the outputs are
//! bit-identical across runs, clocks and schedulings.

pub mod camera;
pub mod detect;
pub mod fusion;
pub mod imu;
pub mod messages;
pub mod params;

use lane_msgs::{
    ImuSample, LaneEstimate, VehicleState, VehicleTruth, TOPIC_IMU, TOPIC_LANE_ESTIMATE,
    TOPIC_VEHICLE_STATE, TOPIC_VEHICLE_TRUTH,
};
use takt::task::{Ports, Registry};

use messages::{LaneDetection, LaneImage, TOPIC_LANE_DETECTION, TOPIC_LANE_IMAGE};

/// The `perception` app's tasks, as its executable `lane-perception` hosts them.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    register(&mut r);
    r
}

/// Adds the `perception` app's tasks to `r`. Each task declares exactly the ports its
/// constructor opens and the parameters it reads. A program that runs the whole deployment in one process (the
/// verification suite) registers both suppliers' tasks into one registry this way.
pub fn register(r: &mut Registry) {
    r.task(
        "imu",
        Ports::new()
            .reads::<VehicleTruth>(TOPIC_VEHICLE_TRUTH)
            .writes::<ImuSample>(TOPIC_IMU)
            .declare_all(imu::PARAMS),
        imu::build,
    )
    .task(
        "lane_camera",
        Ports::new()
            .reads::<VehicleTruth>(TOPIC_VEHICLE_TRUTH)
            .writes::<LaneImage>(TOPIC_LANE_IMAGE)
            .declare_all(camera::PARAMS),
        camera::build,
    )
    .task(
        "lane_detect",
        Ports::new()
            .reads::<LaneImage>(TOPIC_LANE_IMAGE)
            .writes::<LaneDetection>(TOPIC_LANE_DETECTION)
            .declare_all(detect::PARAMS),
        detect::build,
    )
    .task(
        "lane_fusion",
        Ports::new()
            .reads::<LaneDetection>(TOPIC_LANE_DETECTION)
            .reads::<ImuSample>(TOPIC_IMU)
            .reads::<VehicleState>(TOPIC_VEHICLE_STATE)
            .writes::<LaneEstimate>(TOPIC_LANE_ESTIMATE)
            .declare_all(fusion::PARAMS),
        fusion::build,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_declares_the_perception_tasks_and_their_types() {
        let r = registry();
        let c = r.catalog();
        let tasks: Vec<&str> = c.tasks.keys().map(String::as_str).collect();
        assert_eq!(tasks, ["imu", "lane_camera", "lane_detect", "lane_fusion"]);
        let types: Vec<&str> = c.types.keys().copied().collect();
        assert_eq!(
            types,
            [
                "ImuSample",
                "LaneDetection",
                "LaneEstimate",
                "LaneImage",
                "VehicleState",
                "VehicleTruth"
            ]
        );
    }
}

#![deny(unsafe_code)]
//! The closed-loop adaptive cruise control (ACC) demo, built only on takt's public API.
//!
//! Owns: seven tasks and their eight message types, registered by [`registry`] (or
//! [`registry_with`] for another planner version) under the names `config/acc.toml` uses. It must never reach around takt: no raw memory access, no threads,
//! no clocks, no I/O in a step; tasks see each other only through their ports.
//!
//! ```text
//!            truth                radar_track             fused_object
//!  world ───────────► radar ─────────────────► perception ────────────► planner
//!    ▲  │   truth             camera_frame (4 MiB)  ▲                  │ accel_request
//!    │  └──────────► camera ────────────────────────┘                  ▼
//!    │  ego_state ─────────────────────────────────────────► planner, controller
//!    │                                  accel_command                  │
//!    └── applied_command ◄── actuator ◄────────────────────────────────┘
//! ```
//!
//! * [`world`]: the simulated road (lead vehicle profile, ego dynamics) and the run's judge.
//! * [`radar`], [`camera`]: sensor models; the camera renders a 4 MiB frame in place.
//! * [`perception`]: camera range from the box size, fused with the radar.
//! * [`planner`]: time-gap policy with a set speed, in three versions ([`PlannerPolicy`]):
//!   a constant time gap (the default), a speed-scheduled one, and the same with a CPU
//!   overrun; the `acc-planning-v2` and `acc-planning-v3` executables are the `planning`
//!   app with versions 2 and 3, as OTA bundles carry them.
//! * [`controller`]: acceleration tracking (PI + feed-forward); owns the run's digest.
//! * [`actuator`]: rate and range limits; safe stop when the command goes stale.
//!
//! Every task's core is a plain struct with a pure `step`/`decide` function, tested without
//! ports; the task structs only move data between those cores and their ports. Everything
//! is `f64` arithmetic in a fixed order on logical time (job releases), with seeded
//! generators, so the outputs are bit-identical across runs, clocks and schedulings.

pub mod actuator;
pub mod camera;
pub mod controller;
pub mod messages;
pub mod params;
pub mod perception;
pub mod planner;
pub mod radar;
pub mod vehicle;
pub mod world;

#[cfg(test)]
mod closed_loop;

use takt::task::{Ports, Registry};

use messages::*;
pub use planner::PlannerPolicy;

/// Every task implementation and message type of the ACC demo, under the names the
/// manifest uses, with version 1 of the planner. Each task declares exactly the ports its
/// constructor opens and the parameters it reads. The demo's executables each register one app's part of it
/// ([`sensing_registry`], [`planning_registry`], [`vehicle_registry`]); the whole is for
/// running the demo inside one process (tests, verification suites).
pub fn registry() -> Registry {
    registry_with(PlannerPolicy::ConstantGap)
}

/// [`registry`] with the given planner version.
pub fn registry_with(policy: PlannerPolicy) -> Registry {
    let mut r = Registry::new();
    register_vehicle(&mut r);
    register_sensing(&mut r);
    register_planning(&mut r, policy);
    r
}

/// The `sensing` app: `radar`, `camera`, `perception`.
pub fn sensing_registry() -> Registry {
    let mut r = Registry::new();
    register_sensing(&mut r);
    r
}

/// The `planning` app (`planner`, `controller`) with the given planner version.
pub fn planning_registry(policy: PlannerPolicy) -> Registry {
    let mut r = Registry::new();
    register_planning(&mut r, policy);
    r
}

/// The `vehicle` app: `world`, `actuator`.
pub fn vehicle_registry() -> Registry {
    let mut r = Registry::new();
    register_vehicle(&mut r);
    r
}

fn register_vehicle(r: &mut Registry) {
    r.task(
        "world",
        Ports::new()
            .reads::<AppliedCommand>(TOPIC_APPLIED_COMMAND)
            .reads::<AccelRequest>(TOPIC_ACCEL_REQUEST)
            .writes::<GroundTruth>(TOPIC_TRUTH)
            .writes::<EgoState>(TOPIC_EGO_STATE)
            .declare_all(world::PARAMS),
        world::build,
    )
    .task(
        "actuator",
        Ports::new()
            .reads::<AccelCommand>(TOPIC_ACCEL_COMMAND)
            .writes::<AppliedCommand>(TOPIC_APPLIED_COMMAND)
            .declare_all(actuator::PARAMS),
        actuator::build,
    );
}

fn register_sensing(r: &mut Registry) {
    r.task(
        "radar",
        Ports::new()
            .reads::<GroundTruth>(TOPIC_TRUTH)
            .writes::<RadarTrack>(TOPIC_RADAR_TRACK)
            .declare_all(radar::PARAMS),
        radar::build,
    )
    .task(
        "camera",
        Ports::new()
            .reads::<GroundTruth>(TOPIC_TRUTH)
            .writes::<CameraFrame>(TOPIC_CAMERA_FRAME),
        camera::build,
    )
    .task(
        "perception",
        Ports::new()
            .reads::<RadarTrack>(TOPIC_RADAR_TRACK)
            .reads::<CameraFrame>(TOPIC_CAMERA_FRAME)
            .writes::<FusedObject>(TOPIC_FUSED_OBJECT)
            .declare_all(perception::PARAMS),
        perception::build,
    );
}

fn register_planning(r: &mut Registry, policy: PlannerPolicy) {
    r.task(
        "planner",
        Ports::new()
            .reads::<FusedObject>(TOPIC_FUSED_OBJECT)
            .reads::<EgoState>(TOPIC_EGO_STATE)
            .writes::<AccelRequest>(TOPIC_ACCEL_REQUEST)
            .declare_all(planner::PARAMS),
        policy.constructor(),
    )
    .task(
        "controller",
        Ports::new()
            .reads::<AccelRequest>(TOPIC_ACCEL_REQUEST)
            .reads::<EgoState>(TOPIC_EGO_STATE)
            .writes::<AccelCommand>(TOPIC_ACCEL_COMMAND)
            .declare_all(controller::PARAMS),
        controller::build,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_knows_every_task_and_type() {
        let r = registry();
        let c = r.catalog();
        let tasks: Vec<&str> = c.tasks.keys().map(String::as_str).collect();
        assert_eq!(
            tasks,
            [
                "actuator",
                "camera",
                "controller",
                "perception",
                "planner",
                "radar",
                "world"
            ]
        );
        assert_eq!(c.types.len(), 8);
        assert_eq!(c.types["CameraFrame"].size, 4 * 1024 * 1024 + 32);
        // Every topic has exactly one writer among the registered tasks.
        let mut writers: Vec<&str> = c
            .tasks
            .values()
            .flat_map(|s| s.writes.iter().map(|(t, _)| t.as_str()))
            .collect();
        writers.sort_unstable();
        let before = writers.len();
        writers.dedup();
        assert_eq!(before, writers.len());
        // And every topic read is written by someone, with the same type.
        for sig in c.tasks.values() {
            for (topic, ty) in &sig.reads {
                let written = c
                    .tasks
                    .values()
                    .flat_map(|s| s.writes.iter())
                    .any(|(t, wty)| t == topic && wty == ty);
                assert!(written, "topic {topic} ({ty}) is read but never written");
            }
        }
    }

    #[test]
    fn every_planner_version_registers_the_same_tasks_ports_and_types() {
        let v1 = registry();
        for policy in PlannerPolicy::ALL {
            let r = registry_with(policy);
            assert_eq!(r.catalog().tasks, v1.catalog().tasks, "{policy:?}");
            assert_eq!(r.catalog().types, v1.catalog().types, "{policy:?}");
        }
        // The versions' constructors differ where they should, the planner's: each policy
        // hands out its own function (what each builds is compared in
        // tests/planner_versions.rs, which runs them).
        let f = |p: PlannerPolicy| p.constructor() as usize;
        assert_ne!(
            f(PlannerPolicy::ConstantGap),
            f(PlannerPolicy::SpeedScheduledGap)
        );
        assert_ne!(
            f(PlannerPolicy::SpeedScheduledGap),
            f(PlannerPolicy::Overrunning)
        );
        for t in [
            "world",
            "radar",
            "camera",
            "perception",
            "controller",
            "actuator",
        ] {
            assert!(registry_with(PlannerPolicy::Overrunning)
                .constructor(t)
                .is_ok());
        }
    }
}

//! Supplier B's own messages: the lateral plan, the steering command and what the actuator
//! applies.
//!
//! Owns: the vocabulary inside the `control` app. Nothing here crosses to supplier A (what
//! does is in `lane-msgs`), so supplier B may change it alone. Like every message it is
//! plain old data (`bytemuck::Pod`, `#[repr(C)]`, explicit `_pad`), declared with
//! [`takt::message!`]; it must never hold pointers or anything process-local.

/// The planner's path (`lateral_planner` → `steer_controller`).
pub const TOPIC_LATERAL_PLAN: &str = "lateral_plan";
/// The controller's steering angle (`steer_controller` → `steer_actuator`).
pub const TOPIC_STEER_COMMAND: &str = "steer_command";
/// The angle the actuator applies to the rack (`steer_actuator` → `vehicle_world`).
pub const TOPIC_STEER_APPLIED: &str = "steer_applied";

takt::message! {
    /// The path the vehicle should drive: a curvature to follow until the next plan.
    #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct LateralPlan {
        /// The planner job's release.
        pub time_ns: u64,
        /// Curvature the vehicle should drive (left: positive).
        pub curvature_per_m: f64,
        /// The lane's own curvature ahead, the feed-forward part of `curvature_per_m`.
        pub road_curvature_per_m: f64,
        /// 1 if the assist steers; 0 if it has handed the wheel to the driver (no usable lane
        /// estimate, too long without a camera measurement, too slow).
        pub engaged: u32,
        pub _pad: u32,
    }
}

takt::message! {
    /// The controller's road-wheel angle.
    #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct SteerCommand {
        /// Index of the controller job that produced it.
        pub job_index: u64,
        /// The controller job's release.
        pub time_ns: u64,
        /// Road-wheel angle (left: positive). While disengaged: the measured angle, so the
        /// actuator takes over from where the wheel is when the assist engages.
        pub angle_rad: f64,
        /// 1 if the assist asks to steer.
        pub engaged: u32,
        pub _pad: u32,
    }
}

takt::message! {
    /// What the steering actuator applies.
    #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct SteerApplied {
        /// The actuator job's release.
        pub time_ns: u64,
        /// Road-wheel angle after the actuator's range and rate limits.
        pub angle_rad: f64,
        /// 1 if the actuator steers; 0 if the driver has the wheel.
        pub active: u32,
        pub _pad: u32,
    }
}

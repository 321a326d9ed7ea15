#![deny(unsafe_code)]
//! The interface between the two suppliers of the lane-keeping deployment
//! (`config/lanekeep.toml`): the message types and topic names that cross from one
//! supplier's app to the other's.
//!
//! Owns: the wire vocabulary the integrator agreed with both suppliers, and nothing else.
//! Supplier A (`supplier-a-perception`: IMU, lane camera, lane detection, fusion) and
//! supplier B (`supplier-b-control`: the simulated vehicle, lateral planner, steering
//! controller and actuator) each depend on this crate and on takt, never on each other, so
//! either can be rebuilt, re-versioned and updated over the air alone. Messages that stay
//! inside one supplier's app (the camera image, the detection, the plan, the steering
//! command) are that supplier's own business and live in its crate.
//!
//! Every type is plain old data (`bytemuck::Pod`, `#[repr(C)]`, explicit `_pad` fields so
//! there is no implicit padding) declared with [`takt::message!`], so it can live in shared
//! memory and its layout fingerprint is the same in both suppliers' builds. It must never
//! hold pointers, lengths of heap data or anything process-local.
//!
//! ```text
//!   supplier B (control)                          supplier A (perception)
//!   vehicle_world ── vehicle_truth ─────────────► imu, lane_camera
//!   vehicle_world ── vehicle_state ─────────────► lane_fusion
//!   steer_controller ◄── imu ────────────────────  imu
//!   lateral_planner  ◄── lane_estimate ──────────  lane_fusion
//! ```
//!
//! Conventions: SI units in the field names; lateral quantities positive to the left
//! (offset left of the lane centre, heading turned left of the road, curvature of a left
//! bend); times (`*_ns`) are logical instants since the epoch taken from job releases,
//! never from a clock, so they are the same in every run.

/// The simulated vehicle's true state relative to its lane (`vehicle_world` → `imu`,
/// `lane_camera`). In a car this link is physics; here the sensor models of supplier A
/// sample supplier B's simulation through it.
pub const TOPIC_VEHICLE_TRUTH: &str = "vehicle_truth";
/// What the vehicle's own bus reports (`vehicle_world` → `lane_fusion`, and inside
/// supplier B to `lateral_planner`, `steer_controller`).
pub const TOPIC_VEHICLE_STATE: &str = "vehicle_state";
/// The inertial measurement unit's samples (`imu` → `lane_fusion`, `steer_controller`).
pub const TOPIC_IMU: &str = "imu";
/// The fused lane geometry relative to the vehicle (`lane_fusion` → `lateral_planner`).
pub const TOPIC_LANE_ESTIMATE: &str = "lane_estimate";

/// `true` in a `u32` flag field.
pub const TRUE: u32 = 1;
/// `false` in a `u32` flag field.
pub const FALSE: u32 = 0;

takt::message! {
    /// The vehicle and the road at one simulated instant, in road coordinates: how far along
    /// the lane's centre line, how far beside it, at what angle to it, and the lane's shape
    /// there. This is what a perfect sensor would see; the sensor models add their errors.
    #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct VehicleTruth {
        /// The simulated instant this state describes (the world job's release).
        pub time_ns: u64,
        /// Distance travelled along the lane's centre line since the start.
        pub distance_m: f64,
        /// The vehicle's centre left of the lane's centre line.
        pub lateral_offset_m: f64,
        /// The vehicle's heading minus the lane's heading (turned left: positive).
        pub heading_error_rad: f64,
        /// Curvature of the lane at the vehicle (left bend: positive).
        pub road_curvature_per_m: f64,
        /// Change of that curvature per metre along the lane (clothoid sharpness).
        pub road_curvature_rate_per_m2: f64,
        /// Distance between the lane's two markings (centre to centre).
        pub lane_width_m: f64,
        pub speed_mps: f64,
        pub yaw_rate_radps: f64,
        pub lateral_accel_mps2: f64,
    }
}

takt::message! {
    /// The vehicle's bus signals: wheel speed and the measured road-wheel steering angle.
    #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct VehicleState {
        /// The instant the values were measured.
        pub time_ns: u64,
        pub speed_mps: f64,
        /// Road-wheel angle (left: positive).
        pub steer_angle_rad: f64,
    }
}

takt::message! {
    /// One IMU sample. Besides the rates it carries the integrated yaw angle, as real IMUs
    /// deliver delta angles: a reader that runs slower than the IMU (fusion every 5 ms, the IMU
    /// every 1 ms) takes the heading change over its own period from two samples instead of
    /// needing every sample in between.
    #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct ImuSample {
        /// The instant the sample was taken (the truth it was measured from).
        pub time_ns: u64,
        /// Measured yaw rate, sensor bias and noise included (left: positive).
        pub yaw_rate_radps: f64,
        /// Measured lateral acceleration (to the left: positive).
        pub lateral_accel_mps2: f64,
        /// The measured yaw rate integrated since the IMU started.
        pub yaw_angle_rad: f64,
    }
}

takt::message! {
    /// The lane as lane fusion estimates it, relative to the vehicle at `time_ns`: the lane's
    /// centre line is, at a distance `x` ahead, `-offset - heading * x + curvature * x^2 / 2 +
    /// curvature_rate * x^3 / 6` to the left of the vehicle.
    #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct LaneEstimate {
        /// The instant the estimate refers to (the fusion job's release).
        pub time_ns: u64,
        /// The vehicle's centre left of the lane's centre line.
        pub lateral_offset_m: f64,
        /// The vehicle's heading minus the lane's heading (turned left: positive).
        pub heading_error_rad: f64,
        /// Curvature of the lane at the vehicle (left bend: positive).
        pub curvature_per_m: f64,
        /// Change of that curvature per metre ahead.
        pub curvature_rate_per_m2: f64,
        /// Capture instant of the newest camera measurement in the estimate (0: none yet).
        pub camera_time_ns: u64,
        /// [`TRUE`] once a camera measurement has initialised the estimate.
        pub valid: u32,
        /// [`TRUE`] if the newest camera measurement is older than the fusion's camera timeout:
        /// the estimate is propagated with the IMU and wheel speed alone.
        pub dead_reckoning: u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use takt::port::Message;

    #[test]
    fn layouts_have_no_implicit_padding_and_stable_sizes() {
        // Pod already refuses padding at compile time; the sizes pin the layouts both
        // suppliers build against, so a field change shows up here as well as in the
        // fingerprints.
        assert_eq!(std::mem::size_of::<VehicleTruth>(), 80);
        assert_eq!(std::mem::size_of::<VehicleState>(), 24);
        assert_eq!(std::mem::size_of::<ImuSample>(), 32);
        assert_eq!(std::mem::size_of::<LaneEstimate>(), 56);
        assert_eq!(LaneEstimate::TYPE_NAME, "LaneEstimate");
        assert_ne!(
            VehicleState::fingerprint().hash,
            ImuSample::fingerprint().hash
        );
    }
}

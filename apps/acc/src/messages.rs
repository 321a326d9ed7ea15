//! The message types and topic names of the ACC demo.
//!
//! Owns: the wire vocabulary between the demo's tasks. Every type is plain old data
//! (`bytemuck::Pod`, `#[repr(C)]` added by the macro, explicit `_pad` fields so there is no
//! implicit padding) declared with [`takt::message!`], so it can live in shared memory, its
//! bytes are fully determined by its fields (the controller hashes them), and its
//! structural layout (field names, types, offsets) is what a peer's fingerprint is checked
//! against. It must never hold pointers, lengths of heap data or anything process-local.
//!
//! Times inside messages (`*_ns`) are logical instants since the epoch, taken from job
//! release times, never from a clock, so they are the same in every run.

use std::fmt;

/// Ground truth of the simulated world (`world` → `radar`, `camera`).
pub const TOPIC_TRUTH: &str = "truth";
/// What the ego vehicle's own bus reports (`world` → `planner`, `controller`).
pub const TOPIC_EGO_STATE: &str = "ego_state";
/// The radar's track of the lead vehicle (`radar` → `perception`).
pub const TOPIC_RADAR_TRACK: &str = "radar_track";
/// The 4 MiB camera frame (`camera` → `perception`).
pub const TOPIC_CAMERA_FRAME: &str = "camera_frame";
/// The fused lead object (`perception` → `planner`).
pub const TOPIC_FUSED_OBJECT: &str = "fused_object";
/// The planner's desired acceleration and its time-gap policy (`planner` → `controller`,
/// `world`: the world judges convergence against the planner's own target).
pub const TOPIC_ACCEL_REQUEST: &str = "accel_request";
/// The controller's command (`controller` → `actuator`).
pub const TOPIC_ACCEL_COMMAND: &str = "accel_command";
/// The command the actuator applies to the vehicle (`actuator` → `world`).
pub const TOPIC_APPLIED_COMMAND: &str = "applied_command";

/// Width of a camera frame in pixels (one byte per pixel, grey levels).
pub const FRAME_WIDTH: usize = 4096;
/// Height of a camera frame in pixels.
pub const FRAME_HEIGHT: usize = 1024;

/// The pixel rows of one frame: exactly 4 MiB.
pub type Pixels = [[u8; FRAME_WIDTH]; FRAME_HEIGHT];

const _: () = assert!(std::mem::size_of::<Pixels>() == 4 * 1024 * 1024);

/// `true` in a `u32` flag field.
pub const TRUE: u32 = 1;
/// `false` in a `u32` flag field.
pub const FALSE: u32 = 0;

takt::message! {
    /// The state of both vehicles at one simulated instant. Positions are along the lane, the
    /// lead's position being its rear bumper and the ego's its front bumper, so
    /// `gap_m = lead_position_m - ego_position_m`.
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct GroundTruth {
        /// The simulated instant this state describes (the world job's release).
        pub time_ns: u64,
        pub lead_position_m: f64,
        pub lead_speed_mps: f64,
        pub lead_accel_mps2: f64,
        pub ego_position_m: f64,
        pub ego_speed_mps: f64,
        pub ego_accel_mps2: f64,
        pub gap_m: f64,
    }
}

takt::message! {
    /// The ego vehicle's speed and acceleration as its own sensors report them.
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct EgoState {
        /// The instant the values were measured.
        pub time_ns: u64,
        pub speed_mps: f64,
        pub accel_mps2: f64,
    }
}

takt::message! {
    /// One radar measurement of the vehicle ahead.
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct RadarTrack {
        /// The instant of the ground truth the measurement was taken from.
        pub time_ns: u64,
        pub range_m: f64,
        /// Lead speed minus ego speed: negative while closing in.
        pub range_rate_mps: f64,
        /// [`TRUE`] if the radar detected the lead vehicle in this cycle.
        pub valid: u32,
        pub _pad: u32,
    }
}

takt::message! {
    /// A camera frame: metadata plus 4 MiB of pixels, filled in place in shared memory.
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct CameraFrame {
        /// Index of the camera job that rendered the frame.
        pub job_index: u64,
        /// The camera's frame counter: equals the port's sequence number of this sample.
        pub seq: u64,
        /// The instant of the ground truth the frame depicts (its exposure time).
        pub capture_ns: u64,
        /// [`TRUE`] if the frame depicts a scene (the camera had ground truth to render).
        pub valid: u32,
        pub _pad: u32,
        pub pixels: Pixels,
    }
}

impl fmt::Debug for CameraFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pixels are 4 MiB: print the metadata only.
        f.debug_struct("CameraFrame")
            .field("job_index", &self.job_index)
            .field("seq", &self.seq)
            .field("capture_ns", &self.capture_ns)
            .field("valid", &self.valid)
            .finish_non_exhaustive()
    }
}

/// Bit in [`FusedObject::sources`]: the radar contributed.
pub const SOURCE_RADAR: u32 = 1;
/// Bit in [`FusedObject::sources`]: the camera contributed.
pub const SOURCE_CAMERA: u32 = 2;

takt::message! {
    /// The lead vehicle as perception estimates it at the perception job's release.
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct FusedObject {
        /// The instant the estimate refers to (the perception job's release).
        pub time_ns: u64,
        pub range_m: f64,
        pub range_rate_mps: f64,
        /// One-sigma uncertainty of `range_m`.
        pub range_std_m: f64,
        /// [`TRUE`] if at least one sensor saw the lead vehicle recently enough.
        pub valid: u32,
        /// [`SOURCE_RADAR`] | [`SOURCE_CAMERA`]: which sensors contributed.
        pub sources: u32,
    }
}

takt::message! {
    /// The planner's output: a desired acceleration and the policy that produced it.
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct AccelRequest {
        /// The instant the request was computed for (the planner job's release).
        pub time_ns: u64,
        pub accel_mps2: f64,
        /// The gap the policy aims at for the current ego speed: `standstill_m + time_gap_s * v`.
        pub desired_gap_m: f64,
        /// The policy's time gap (a parameter of the planner).
        pub time_gap_s: f64,
        /// The policy's standstill distance (a parameter of the planner).
        pub standstill_m: f64,
        /// [`TRUE`] if the gap policy (not the set speed) determined `accel_mps2`.
        pub gap_control: u32,
        pub _pad: u32,
    }
}

takt::message! {
    /// The controller's acceleration command to the actuator.
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct AccelCommand {
        /// Index of the controller job that produced it.
        pub job_index: u64,
        /// The instant the command was computed for (the controller job's release).
        pub time_ns: u64,
        /// Requested drive (positive) or brake (negative) acceleration, before drag.
        pub accel_mps2: f64,
    }
}

takt::message! {
    /// What the actuator applies to the vehicle.
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct AppliedCommand {
        /// The instant the command was applied (the actuator job's release).
        pub time_ns: u64,
        /// Drive (positive) or brake (negative) acceleration after rate and range limits.
        pub accel_mps2: f64,
        /// [`TRUE`] if the actuator is braking on its own because the command went stale.
        pub safe_stop: u32,
        pub _pad: u32,
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{align_of, offset_of, size_of};

    use takt::port::{Message, Shape, TypeLayout};

    use super::*;

    fn fields(layout: &TypeLayout) -> Vec<(&str, u64, &str)> {
        let Shape::Struct { fields } = &layout.shape else {
            panic!("a message is a struct: {layout:?}");
        };
        fields
            .iter()
            .map(|f| (f.name.as_str(), f.offset, f.ty.name.as_str()))
            .collect()
    }

    #[test]
    fn radar_track_layout_lists_every_field_at_its_offset() {
        let layout = RadarTrack::layout();
        assert_eq!(
            (layout.name.as_str(), layout.size, layout.align),
            (
                "RadarTrack",
                size_of::<RadarTrack>() as u64,
                align_of::<RadarTrack>() as u64
            )
        );
        assert_eq!(
            fields(&layout),
            [
                ("time_ns", offset_of!(RadarTrack, time_ns) as u64, "u64"),
                ("range_m", offset_of!(RadarTrack, range_m) as u64, "f64"),
                (
                    "range_rate_mps",
                    offset_of!(RadarTrack, range_rate_mps) as u64,
                    "f64"
                ),
                ("valid", offset_of!(RadarTrack, valid) as u64, "u32"),
                ("_pad", offset_of!(RadarTrack, _pad) as u64, "u32"),
            ]
        );
        assert_eq!(RadarTrack::fingerprint().hash, layout.hash());
    }

    #[test]
    fn camera_frame_pixels_are_a_nested_array() {
        let layout = CameraFrame::layout();
        let pixels = fields(&layout)[5];
        assert_eq!(
            pixels,
            (
                "pixels",
                offset_of!(CameraFrame, pixels) as u64,
                "[[u8; 4096]; 1024]"
            )
        );
        assert_eq!(layout.size, size_of::<CameraFrame>() as u64);
    }
}

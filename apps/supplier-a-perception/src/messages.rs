//! Supplier A's own messages: the lane camera's image and the lane detection, with the
//! camera's geometry both sides of that channel agree on.
//!
//! Owns: the vocabulary inside the `perception` app. Nothing here crosses to supplier B
//! (what does is in `lane-msgs`), so supplier A may change it alone. Like every message it
//! is plain old data (`bytemuck::Pod`, `#[repr(C)]`, explicit `_pad`), declared with
//! [`takt::message!`]; it must never hold pointers or anything process-local.
//!
//! # The image
//!
//! The camera delivers a rectified bird's-eye view of the road ahead: [`IMAGE_ROWS`] rows,
//! row `i` at [`row_distance_m`]`(i)` ahead of the vehicle's reference point, and
//! [`IMAGE_COLUMNS`] columns, column `j` centred [`column_lateral_m`]`(j)` to the left of
//! the vehicle's centre line (column 0 is the leftmost). One grey byte per pixel: 16 KiB a
//! frame, a few microseconds to fill or scan.

use std::fmt;

/// The camera's frame (`lane_camera` → `lane_detect`).
pub const TOPIC_LANE_IMAGE: &str = "lane_image";
/// The lane geometry measured in one frame (`lane_detect` → `lane_fusion`).
pub const TOPIC_LANE_DETECTION: &str = "lane_detection";

/// Rows of an image, nearest first.
pub const IMAGE_ROWS: usize = 64;
/// Columns of an image, leftmost first.
pub const IMAGE_COLUMNS: usize = 256;
/// Distance ahead of the first row.
pub const IMAGE_NEAR_M: f64 = 5.0;
/// Distance between consecutive rows.
pub const IMAGE_ROW_STEP_M: f64 = 0.5;
/// Width of one column (one pixel).
pub const IMAGE_COLUMN_STEP_M: f64 = 0.05;

/// The pixels of one frame.
pub type Pixels = [[u8; IMAGE_COLUMNS]; IMAGE_ROWS];

/// How far ahead row `row` images the road.
pub fn row_distance_m(row: usize) -> f64 {
    IMAGE_NEAR_M + row as f64 * IMAGE_ROW_STEP_M
}

/// How far left of the vehicle's centre line column `column` is centred.
pub fn column_lateral_m(column: usize) -> f64 {
    (IMAGE_COLUMNS as f64 / 2.0 - 0.5 - column as f64) * IMAGE_COLUMN_STEP_M
}

/// The (fractional) column centred `lateral_m` to the left of the vehicle: the inverse of
/// [`column_lateral_m`].
pub fn lateral_to_column(lateral_m: f64) -> f64 {
    IMAGE_COLUMNS as f64 / 2.0 - 0.5 - lateral_m / IMAGE_COLUMN_STEP_M
}

takt::message! {
    /// One camera frame.
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct LaneImage {
        /// Index of the camera job that rendered it.
        pub job_index: u64,
        /// The instant the frame depicts (its exposure): the truth's time.
        pub capture_ns: u64,
        /// 1 if the frame depicts a scene (the camera had a truth to render).
        pub valid: u32,
        pub _pad: u32,
        pub pixels: Pixels,
    }
}

impl fmt::Debug for LaneImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // 16 KiB of pixels: print the metadata only.
        f.debug_struct("LaneImage")
            .field("job_index", &self.job_index)
            .field("capture_ns", &self.capture_ns)
            .field("valid", &self.valid)
            .finish_non_exhaustive()
    }
}

takt::message! {
    /// The lane measured in one frame, relative to the vehicle at the frame's capture instant,
    /// in the same terms as [`lane_msgs::LaneEstimate`].
    #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct LaneDetection {
        /// The capture instant of the frame the measurement comes from.
        pub time_ns: u64,
        pub lateral_offset_m: f64,
        pub heading_error_rad: f64,
        pub curvature_per_m: f64,
        pub curvature_rate_per_m2: f64,
        /// Marking points the final fit used (two per row at most).
        pub points: u32,
        /// 1 if enough markings were found for a fit.
        pub valid: u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_round_trips_and_is_symmetric() {
        assert_eq!(row_distance_m(0), IMAGE_NEAR_M);
        assert_eq!(row_distance_m(IMAGE_ROWS - 1), 36.5);
        assert_eq!(column_lateral_m(0), 6.375);
        assert_eq!(column_lateral_m(IMAGE_COLUMNS - 1), -6.375);
        for j in 0..IMAGE_COLUMNS {
            assert!((lateral_to_column(column_lateral_m(j)) - j as f64).abs() < 1e-9);
        }
        assert_eq!(std::mem::size_of::<LaneImage>(), 16 * 1024 + 24);
    }
}

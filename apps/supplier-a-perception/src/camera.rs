//! The `lane_camera` task: a simulated lane camera.
//!
//! Owns: the image model. From the truth (the vehicle's offset and heading in its lane, the
//! lane's width, curvature and curvature rate) it renders the bird's-eye frame described in
//! [`crate::messages`] in place in shared memory: grey asphalt, a solid left marking and a
//! dashed right one (the dashes fixed to the road, so they move through the image as the
//! car drives), seeded sensor noise on every pixel, isolated saturated pixels (salt noise)
//! and, now and then, a frame washed out by glare. A pixel's grey level is the share of it
//! the paint covers, so markings have soft edges as in a real image. It must never tell the detector anything
//! but pixels, and its step never allocates, locks or does I/O.
//!
//! The lane's centre line at a distance `x` ahead is rendered at
//! `-offset - heading * x + curvature * x^2 / 2 + curvature_rate * x^3 / 6` to the left of
//! the vehicle: the small-angle clothoid every lane-keeping camera model uses, exact enough
//! for the headings (a few degrees) a car in its lane has.

use lane_msgs::{VehicleTruth, TOPIC_VEHICLE_TRUTH};
use takt::task::{
    Declare, FloatParam, Reader, SeedParam, StepContext, Task, TaskBuildError, TaskBuilder,
    TaskReport, Writer,
};

use crate::messages::{
    lateral_to_column, row_distance_m, LaneImage, Pixels, IMAGE_COLUMNS, IMAGE_COLUMN_STEP_M,
    TOPIC_LANE_IMAGE,
};
use takt::rng::SplitMix64;

/// What the road looks like and how often the camera is blinded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CameraParams {
    /// Width of a painted marking.
    pub marking_width_m: f64,
    /// The right marking is painted `dash_m` of every `dash_period_m` along the road.
    pub dash_m: f64,
    pub dash_period_m: f64,
    /// Grey level of asphalt and of paint, before the sensor noise (0..=31) is added.
    pub road_grey: u8,
    pub marking_grey: u8,
    /// Probability that a frame is saturated by glare.
    pub glare: f64,
}

pub const DASH_PERIOD_M: FloatParam = FloatParam::new("dash_period_m", 12.0, 1.0, 100.0);
pub const MARKING_WIDTH_M: FloatParam = FloatParam::new("marking_width_m", 0.15, 0.05, 0.5);
/// At most `dash_period_m` (checked when the task is built).
pub const DASH_M: FloatParam = FloatParam::new("dash_m", 4.0, 0.0, 100.0);
// 0..=224 leaves room for the noise on top without wrapping.
pub const ROAD_GREY: FloatParam = FloatParam::new("road_grey", 60.0, 0.0, 224.0);
pub const MARKING_GREY: FloatParam = FloatParam::new("marking_grey", 190.0, 0.0, 224.0);
pub const GLARE: FloatParam = FloatParam::new("glare", 0.01, 0.0, 1.0);
pub const SEED: SeedParam = SeedParam::new("seed", 23);

/// Every parameter this task reads, as its catalog declares them.
pub const PARAMS: &[&dyn Declare] = &[
    &DASH_PERIOD_M,
    &MARKING_WIDTH_M,
    &DASH_M,
    &ROAD_GREY,
    &MARKING_GREY,
    &GLARE,
    &SEED,
];

impl Default for CameraParams {
    fn default() -> Self {
        CameraParams {
            marking_width_m: MARKING_WIDTH_M.default,
            dash_m: DASH_M.default,
            dash_period_m: DASH_PERIOD_M.default,
            road_grey: ROAD_GREY.default as u8,
            marking_grey: MARKING_GREY.default as u8,
            glare: GLARE.default,
        }
    }
}

/// A noise byte with this value is a saturated (salt) pixel: 1 in 256.
const SALT: u8 = u8::MAX;

/// The image model with its generator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CameraModel {
    pub params: CameraParams,
    rng: SplitMix64,
}

/// The fraction of column `column`'s width that paint centred `lateral_m` to the left and
/// `2 * half_width_m` wide covers: the camera integrates light over a pixel, so a marking's
/// edges show as intermediate grey levels, which is what lets the detector place it to a
/// fraction of a pixel.
fn coverage(column: i64, lateral_m: f64, half_width_m: f64) -> f64 {
    let centre_m = (IMAGE_COLUMNS as f64 / 2.0 - 0.5 - column as f64) * IMAGE_COLUMN_STEP_M;
    let half_pixel_m = IMAGE_COLUMN_STEP_M / 2.0;
    let low = (centre_m - half_pixel_m).max(lateral_m - half_width_m);
    let high = (centre_m + half_pixel_m).min(lateral_m + half_width_m);
    ((high - low) / IMAGE_COLUMN_STEP_M).max(0.0)
}

/// The columns `first..=last` paint centred `lateral_m` to the left may touch (possibly
/// none, or beyond the image): only these need [`coverage`], which keeps a frame's cost
/// near that of filling it with noise.
fn touched_columns(lateral_m: f64, half_width_m: f64) -> (i64, i64) {
    let reach_m = half_width_m + IMAGE_COLUMN_STEP_M / 2.0;
    let first = lateral_to_column(lateral_m + reach_m).floor();
    let last = lateral_to_column(lateral_m - reach_m).ceil();
    (first as i64, last as i64)
}

impl CameraModel {
    pub fn new(params: CameraParams, seed: u64) -> Self {
        CameraModel {
            params,
            rng: SplitMix64::new(seed),
        }
    }

    /// Renders the frame `truth` depicts into `pixels`; returns whether glare saturated it.
    /// Draws the same number of values for every frame (one per eight pixels, plus one).
    pub fn render(&mut self, truth: &VehicleTruth, pixels: &mut Pixels) -> bool {
        let p = self.params;
        let glare = self.rng.next_unit() < p.glare;
        let half_lane_m = truth.lane_width_m / 2.0;
        let half_marking_m = p.marking_width_m / 2.0;
        for (row, line) in pixels.iter_mut().enumerate() {
            let x = row_distance_m(row);
            let centre_m = -truth.lateral_offset_m - truth.heading_error_rad * x
                + truth.road_curvature_per_m * x * x / 2.0
                + truth.road_curvature_rate_per_m2 * x * x * x / 6.0;
            let left_m = centre_m + half_lane_m;
            // The dashes are painted on the road: where this row sees it is the distance
            // travelled plus the row's distance ahead.
            let right_painted = (truth.distance_m + x).rem_euclid(p.dash_period_m) < p.dash_m;
            let right_m = centre_m - half_lane_m;
            let contrast = f64::from(p.marking_grey) - f64::from(p.road_grey);
            let left = touched_columns(left_m, half_marking_m);
            let right = if right_painted {
                touched_columns(right_m, half_marking_m)
            } else {
                (1, 0)
            };
            for (chunk_index, chunk) in line.chunks_exact_mut(8).enumerate() {
                let noise = self.rng.next_u64().to_le_bytes();
                for (k, (pixel, n)) in chunk.iter_mut().zip(noise).enumerate() {
                    let column = (chunk_index * 8 + k) as i64;
                    let mut paint = 0.0;
                    if (left.0..=left.1).contains(&column) {
                        paint += coverage(column, left_m, half_marking_m);
                    }
                    if (right.0..=right.1).contains(&column) {
                        paint += coverage(column, right_m, half_marking_m);
                    }
                    // Rounded to the nearest grey level (+0.5, then truncated).
                    let grey = (f64::from(p.road_grey) + paint.min(1.0) * contrast + 0.5) as u8;
                    *pixel = if glare || n == SALT {
                        u8::MAX
                    } else {
                        grey.saturating_add(n >> 3)
                    };
                }
            }
        }
        glare
    }
}

const _: () = assert!(
    IMAGE_COLUMNS.is_multiple_of(8),
    "noise is drawn 8 pixels at a time"
);

/// The camera task.
pub struct LaneCamera {
    truth_in: Reader<VehicleTruth>,
    image_out: Writer<LaneImage>,
    model: CameraModel,
    frames: u64,
    glare_frames: u64,
    no_truth_frames: u64,
    publish_errors: u64,
}

/// Builds the `lane_camera` task from its manifest parameters.
pub fn build(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    let dash_period_m = b.get(&DASH_PERIOD_M)?;
    let p = CameraParams {
        marking_width_m: b.get(&MARKING_WIDTH_M)?,
        dash_m: b.get(&FloatParam {
            max: dash_period_m,
            ..DASH_M
        })?,
        dash_period_m,
        road_grey: b.get(&ROAD_GREY)? as u8,
        marking_grey: b.get(&MARKING_GREY)? as u8,
        glare: b.get(&GLARE)?,
    };
    Ok(Box::new(LaneCamera {
        truth_in: b.reader(TOPIC_VEHICLE_TRUTH)?,
        image_out: b.writer(TOPIC_LANE_IMAGE)?,
        model: CameraModel::new(p, b.get(&SEED)?),
        frames: 0,
        glare_frames: 0,
        no_truth_frames: 0,
        publish_errors: 0,
    }))
}

impl Task for LaneCamera {
    fn step(&mut self, ctx: &StepContext) {
        let truth = self.truth_in.read(ctx).map(|t| *t);
        let model = &mut self.model;
        let mut glare = false;
        let job_index = ctx.job_index();
        let release_ns = ctx.release_ns();
        // Every byte of the frame is written below, so the slot need not be zeroed first.
        let result = self.image_out.publish_overwrite(ctx, |image| {
            image.job_index = job_index;
            image._pad = 0;
            match truth {
                Some(truth) => {
                    image.capture_ns = truth.time_ns;
                    image.valid = lane_msgs::TRUE;
                    glare = model.render(&truth, &mut image.pixels);
                }
                None => {
                    image.capture_ns = release_ns;
                    image.valid = lane_msgs::FALSE;
                    image.pixels = [[0; IMAGE_COLUMNS]; crate::messages::IMAGE_ROWS];
                }
            }
        });
        self.frames += 1;
        if truth.is_none() {
            self.no_truth_frames += 1;
        }
        if glare {
            self.glare_frames += 1;
        }
        if result.is_err() {
            self.publish_errors += 1;
        }
    }

    fn finish(&mut self, report: &mut TaskReport) {
        report
            .outcome
            .push(("frames".into(), self.frames.to_string()));
        report.outcome.push((
            "glare_frames".into(),
            format!("{}/{}", self.glare_frames, self.frames),
        ));
        if self.publish_errors > 0 {
            report
                .outcome
                .push(("publish_errors".into(), self.publish_errors.to_string()));
        }
    }
}

/// Test support: the truth of a vehicle in a lane with the given geometry.
#[cfg(test)]
pub(crate) fn truth_of(
    offset_m: f64,
    heading_rad: f64,
    curvature_per_m: f64,
    curvature_rate_per_m2: f64,
) -> VehicleTruth {
    VehicleTruth {
        time_ns: 1_000_000,
        distance_m: 3.0,
        lateral_offset_m: offset_m,
        heading_error_rad: heading_rad,
        road_curvature_per_m: curvature_per_m,
        road_curvature_rate_per_m2: curvature_rate_per_m2,
        lane_width_m: 3.5,
        speed_mps: 25.0,
        ..VehicleTruth::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{column_lateral_m, IMAGE_ROWS};

    /// The paint-weighted mean position of the columns within 0.3 m of `expected_m`:
    /// grey levels above asphalt plus mean noise (76) weigh in.
    fn paint_centre_m(line: &[u8; IMAGE_COLUMNS], expected_m: f64) -> Option<f64> {
        let (mut sum, mut weight) = (0.0, 0.0);
        for (j, &v) in line.iter().enumerate() {
            let y = column_lateral_m(j);
            if (y - expected_m).abs() <= 0.3 && v < u8::MAX {
                let w = (f64::from(v) - 76.0).max(0.0);
                sum += w * y;
                weight += w;
            }
        }
        // Noise alone gives at most 15 per pixel; paint gives over 100.
        (weight > 200.0).then(|| sum / weight)
    }

    #[test]
    fn markings_are_where_the_geometry_puts_them() {
        let no_glare = CameraParams {
            glare: 0.0,
            ..CameraParams::default()
        };
        let mut m = CameraModel::new(no_glare, 3);
        let mut pixels = [[0u8; IMAGE_COLUMNS]; IMAGE_ROWS];
        // Straight lane, vehicle 0.52 m left of centre: the left marking 1.23 m to the
        // left, the right one 2.27 m to the right, neither on a pixel centre.
        let truth = truth_of(0.52, 0.0, 0.0, 0.0);
        m.render(&truth, &mut pixels);
        let mut dashed_rows = 0;
        let mut left_error_sum = 0.0;
        for line in &pixels {
            // Within 2 cm in every row (the sensor noise of the twelve asphalt columns in
            // the window moves the mean by about 7 mm), and 5 mm on average.
            let left = paint_centre_m(line, 1.23).expect("the left marking is solid");
            assert!((left - 1.23).abs() < 0.02, "{left}");
            left_error_sum += left - 1.23;
            if let Some(right) = paint_centre_m(line, -2.27) {
                dashed_rows += 1;
                assert!((right + 2.27).abs() < 0.02, "{right}");
            }
            // Nothing painted between the markings.
            assert!(paint_centre_m(line, -0.5).is_none());
        }
        assert!((left_error_sum / IMAGE_ROWS as f64).abs() < 0.005);
        // The dash covers a third of the road: about a third of the 64 rows.
        assert!((18..=26).contains(&dashed_rows), "{dashed_rows}");
    }

    #[test]
    fn noise_is_seeded_and_glare_saturates() {
        let truth = truth_of(0.0, 0.01, 0.002, 0.0);
        let mut a = CameraModel::new(CameraParams::default(), 9);
        let mut b = CameraModel::new(CameraParams::default(), 9);
        let mut pa = [[0u8; IMAGE_COLUMNS]; IMAGE_ROWS];
        let mut pb = [[0u8; IMAGE_COLUMNS]; IMAGE_ROWS];
        for _ in 0..5 {
            a.render(&truth, &mut pa);
            b.render(&truth, &mut pb);
            assert_eq!(pa, pb);
        }
        let mut blind = CameraModel::new(
            CameraParams {
                glare: 1.0,
                ..CameraParams::default()
            },
            9,
        );
        assert!(blind.render(&truth, &mut pa));
        assert!(pa.iter().flatten().all(|&v| v == u8::MAX));
    }
}

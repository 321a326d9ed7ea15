//! The `camera` task and the camera model shared with perception.
//!
//! Owns: the image formation of the simulated camera. A frame is 4096 x 1024 grey pixels
//! (4 MiB): a sky gradient above the horizon, a road with dashed lane markings below it
//! (moving with the ego's odometer), and the lead vehicle as a box centred on the optical
//! axis whose size is the pinhole projection of the vehicle's width and height at its
//! range. The box is rendered with exact sub-pixel coverage: pixels fully inside are
//! [`VEHICLE_FULL`]; edge pixels encode their covered fraction in
//! [`VEHICLE_EDGE_MIN`]`..`[`VEHICLE_FULL`], a range the background never uses, so
//! perception can measure the box to a fraction of a pixel.
//!
//! It must never keep a frame of its own: the task renders straight into the loaned
//! shared-memory slot and overwrites every byte, because the slot may still hold an older
//! frame. The step does not allocate, lock or do I/O.

use takt::task::{Reader, StepContext, Task, TaskBuildError, TaskBuilder, TaskReport, Writer};

use crate::messages::{
    CameraFrame, GroundTruth, Pixels, FALSE, FRAME_HEIGHT, FRAME_WIDTH, TOPIC_CAMERA_FRAME,
    TOPIC_TRUTH, TRUE,
};

/// Focal length in pixels (same horizontally and vertically).
pub const FOCAL_PX: f64 = 2000.0;
/// The lead vehicle's width and height as seen from behind.
pub const LEAD_WIDTH_M: f64 = 1.8;
pub const LEAD_HEIGHT_M: f64 = 1.5;
/// Mounting height of the camera above the road.
pub const CAMERA_HEIGHT_M: f64 = 1.2;
/// The row the horizon (and the lead's centre) projects onto.
pub const HORIZON_ROW: usize = FRAME_HEIGHT / 2;
/// The column the optical axis (and the lead's centre) projects onto.
pub const CENTER_COL: usize = FRAME_WIDTH / 2;
/// Ranges below this are drawn as if at this range (the box covers the whole frame).
pub const MIN_RENDER_RANGE_M: f64 = 0.5;

/// Value of a pixel fully covered by the lead vehicle.
pub const VEHICLE_FULL: u8 = 255;
/// Lowest value of a partially covered edge pixel (coverage 0); coverage `c` in `[0, 1)`
/// is `VEHICLE_EDGE_MIN + round(c * EDGE_STEPS)`.
pub const VEHICLE_EDGE_MIN: u8 = 210;
const EDGE_STEPS: f64 = (VEHICLE_FULL - 1 - VEHICLE_EDGE_MIN) as f64;
/// Brightest value the background uses; below [`VEHICLE_EDGE_MIN`] by construction.
pub const BACKGROUND_MAX: u8 = 200;
const LANE_MARKING: u8 = BACKGROUND_MAX;
const LANE_HALF_WIDTH_M: f64 = 1.75;
const MARKING_HALF_WIDTH_M: f64 = 0.075;
const DASH_LENGTH_M: f64 = 3.0;

const _: () = assert!(VEHICLE_EDGE_MIN > BACKGROUND_MAX);
const _: () = assert!(150 + HORIZON_ROW / 16 < BACKGROUND_MAX as usize);

/// What one frame depicts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scene {
    /// Range to the lead vehicle, `None` for an empty road.
    pub lead_range_m: Option<f64>,
    /// Distance the ego has driven: moves the lane-marking dashes.
    pub odometer_m: f64,
}

/// The lead vehicle's box in continuous pixel coordinates (pixel `j` spans `[j, j + 1)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoxPx {
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
}

impl BoxPx {
    /// The projection of the lead vehicle at `range_m`, centred on the optical axis.
    pub fn of_lead(range_m: f64) -> BoxPx {
        let range_m = range_m.max(MIN_RENDER_RANGE_M);
        let half_w = 0.5 * FOCAL_PX * LEAD_WIDTH_M / range_m;
        let half_h = 0.5 * FOCAL_PX * LEAD_HEIGHT_M / range_m;
        // Pixel centres: the axis passes through the middle of the centre pixel.
        let cx = CENTER_COL as f64 + 0.5;
        let cy = HORIZON_ROW as f64 + 0.5;
        BoxPx {
            left: cx - half_w,
            right: cx + half_w,
            top: cy - half_h,
            bottom: cy + half_h,
        }
    }
}

/// How much of pixel `[i, i + 1)` the interval `[lo, hi]` covers.
fn coverage(i: usize, lo: f64, hi: f64) -> f64 {
    let a = i as f64;
    (hi.min(a + 1.0) - lo.max(a)).max(0.0)
}

/// The pixel value for a vehicle coverage `c` in `(0, 1]`.
fn encode(c: f64) -> u8 {
    if c >= 1.0 {
        VEHICLE_FULL
    } else {
        VEHICLE_EDGE_MIN + (c * EDGE_STEPS + 0.5) as u8
    }
}

/// The vehicle coverage a pixel value encodes: 1 for [`VEHICLE_FULL`], a fraction for an
/// edge value, 0 for background.
pub fn decode(value: u8) -> f64 {
    if value == VEHICLE_FULL {
        1.0
    } else if value >= VEHICLE_EDGE_MIN {
        (value - VEHICLE_EDGE_MIN) as f64 / EDGE_STEPS
    } else {
        0.0
    }
}

/// First pixel index touched by `[lo, hi]` and one past the last, clipped to `0..len`.
fn span(lo: f64, hi: f64, len: usize) -> (usize, usize) {
    let first = if lo <= 0.0 { 0 } else { (lo as usize).min(len) };
    let end = if hi <= 0.0 {
        0
    } else {
        let t = hi as usize;
        let t = if (t as f64) < hi { t + 1 } else { t };
        t.min(len)
    };
    (first, end.max(first))
}

fn fill_background_row(row: &mut [u8; FRAME_WIDTH], i: usize, odometer_m: f64) {
    if i < HORIZON_ROW {
        // Sky: brighter towards the horizon.
        row.fill(150 + (i / 16) as u8);
        return;
    }
    let below = (i - HORIZON_ROW + 1) as f64;
    row.fill(70 + ((i - HORIZON_ROW) / 16) as u8);
    // The ground point this row sees, and whether a marking dash lies there.
    let ground_m = FOCAL_PX * CAMERA_HEIGHT_M / below;
    let dash_index = ((ground_m + odometer_m.max(0.0)) / DASH_LENGTH_M) as u64;
    let dash = dash_index.is_multiple_of(2);
    if !dash {
        return;
    }
    let offset_px = LANE_HALF_WIDTH_M * below / CAMERA_HEIGHT_M;
    let half_px = MARKING_HALF_WIDTH_M * below / CAMERA_HEIGHT_M + 0.5;
    let cx = CENTER_COL as f64 + 0.5;
    for centre in [cx - offset_px, cx + offset_px] {
        let (a, b) = span(centre - half_px, centre + half_px, FRAME_WIDTH);
        row[a..b].fill(LANE_MARKING);
    }
}

/// Renders `scene` into `pixels`, overwriting every byte: the result depends on `scene`
/// only, whatever `pixels` held before.
pub fn render(pixels: &mut Pixels, scene: &Scene) {
    for (i, row) in pixels.iter_mut().enumerate() {
        fill_background_row(row, i, scene.odometer_m);
    }
    let Some(range_m) = scene.lead_range_m else {
        return;
    };
    let b = BoxPx::of_lead(range_m);
    let (col_first, col_end) = span(b.left, b.right, FRAME_WIDTH);
    let (row_first, row_end) = span(b.top, b.bottom, FRAME_HEIGHT);
    if col_first == col_end {
        return;
    }
    let (left_cov, right_cov) = (
        coverage(col_first, b.left, b.right),
        coverage(col_end - 1, b.left, b.right),
    );
    for (i, row) in pixels.iter_mut().enumerate().take(row_end).skip(row_first) {
        let cy = coverage(i, b.top, b.bottom);
        if cy <= 0.0 {
            continue;
        }
        // Interior columns are fully covered horizontally; only the two edge columns need
        // their own coverage (they coincide when the box is within one column).
        row[col_first..col_end].fill(encode(cy));
        row[col_first] = encode(left_cov * cy);
        row[col_end - 1] = encode(right_cov * cy);
    }
}

/// The camera task: renders the scene of the newest ground truth into a 4 MiB frame.
pub struct Camera {
    truth_in: Reader<GroundTruth>,
    frame_out: Writer<CameraFrame>,
    frames: u64,
    blind_frames: u64,
    publish_errors: u64,
}

/// Builds the `camera` task.
pub fn build(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    Ok(Box::new(Camera {
        truth_in: b.reader(TOPIC_TRUTH)?,
        frame_out: b.writer(TOPIC_CAMERA_FRAME)?,
        frames: 0,
        blind_frames: 0,
        publish_errors: 0,
    }))
}

impl Task for Camera {
    fn step(&mut self, ctx: &StepContext) {
        let truth = self.truth_in.read(ctx).map(|t| *t.value);
        let (scene, capture_ns, valid) = match truth {
            Some(t) => (
                Scene {
                    lead_range_m: Some(t.gap_m),
                    odometer_m: t.ego_position_m,
                },
                t.time_ns,
                TRUE,
            ),
            None => {
                self.blind_frames += 1;
                (
                    Scene {
                        lead_range_m: None,
                        odometer_m: 0.0,
                    },
                    ctx.release_ns(),
                    FALSE,
                )
            }
        };
        let job_index = ctx.job_index();
        // The port numbers samples one more than the last and at least the job index + 1
        // (so a process taking over the topic continues the sequence); stamping the same
        // number into the frame lets a reader check the two agree.
        let seq = (self.frame_out.published() + 1).max(job_index + 1);
        // `publish_overwrite` skips zeroing 4 MiB because `render` writes every byte, and
        // the metadata fields are all assigned here.
        let published = self.frame_out.publish_overwrite(ctx, |f| {
            f.job_index = job_index;
            f.seq = seq;
            f.capture_ns = capture_ns;
            f.valid = valid;
            f._pad = 0;
            render(&mut f.pixels, &scene);
        });
        match published {
            Ok(_) => self.frames += 1,
            Err(_) => self.publish_errors += 1,
        }
    }

    fn finish(&mut self, report: &mut TaskReport) {
        report
            .outcome
            .push(("frames".into(), self.frames.to_string()));
        if self.blind_frames > 0 {
            report
                .outcome
                .push(("frames_without_truth".into(), self.blind_frames.to_string()));
        }
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

    fn frame_filled_with(value: u8) -> Box<CameraFrame> {
        let mut f: Box<CameraFrame> = bytemuck::zeroed_box();
        for row in f.pixels.iter_mut() {
            row.fill(value);
        }
        f
    }

    #[test]
    fn render_is_deterministic_whatever_the_slot_held() {
        let scene = Scene {
            lead_range_m: Some(23.7),
            odometer_m: 123.4,
        };
        let mut a = frame_filled_with(0);
        let mut b = frame_filled_with(0xab);
        let mut c = frame_filled_with(VEHICLE_FULL);
        render(&mut a.pixels, &scene);
        render(&mut b.pixels, &scene);
        render(&mut c.pixels, &scene);
        assert!(
            a.pixels == b.pixels,
            "old slot contents leaked into the frame"
        );
        assert!(
            a.pixels == c.pixels,
            "old slot contents leaked into the frame"
        );
        // And the scene matters: another range gives another frame.
        let mut d = frame_filled_with(0);
        render(
            &mut d.pixels,
            &Scene {
                lead_range_m: Some(30.0),
                ..scene
            },
        );
        assert!(a.pixels != d.pixels);
    }

    #[test]
    fn background_never_looks_like_the_vehicle() {
        let mut f = frame_filled_with(0);
        for odometer_m in [0.0, 1.5, 4.0] {
            render(
                &mut f.pixels,
                &Scene {
                    lead_range_m: None,
                    odometer_m,
                },
            );
            assert!(f.pixels.iter().flatten().all(|&v| v <= BACKGROUND_MAX));
        }
    }

    #[test]
    fn box_shrinks_with_distance_and_covers_its_projected_area() {
        let mut f = frame_filled_with(0);
        let mut last_area = f64::MAX;
        for range_m in [5.0, 10.0, 20.0, 40.0, 80.0] {
            render(
                &mut f.pixels,
                &Scene {
                    lead_range_m: Some(range_m),
                    odometer_m: 0.0,
                },
            );
            let area: f64 = f.pixels.iter().flatten().map(|&v| decode(v)).sum();
            let b = BoxPx::of_lead(range_m);
            let expected = (b.right - b.left) * (b.bottom - b.top);
            // Each covered pixel is quantized to 1/88 of a pixel at worst.
            let perimeter = 2.0 * ((b.right - b.left) + (b.bottom - b.top)) + 4.0;
            assert!(
                (area - expected).abs() <= perimeter / (2.0 * EDGE_STEPS),
                "range {range_m}: area {area} vs {expected}"
            );
            assert!(area < last_area);
            last_area = area;
        }
    }

    #[test]
    fn a_lead_closer_than_the_minimum_fills_the_frame() {
        let mut f = frame_filled_with(0);
        render(
            &mut f.pixels,
            &Scene {
                lead_range_m: Some(0.0),
                odometer_m: 0.0,
            },
        );
        assert!(f.pixels.iter().flatten().all(|&v| v == VEHICLE_FULL));
    }
}

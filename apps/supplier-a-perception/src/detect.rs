//! The `lane_detect` task: lane markings found in the camera's pixels, fitted as a curve.
//!
//! Owns: turning one [`LaneImage`] into one [`LaneDetection`]. Each row is scanned for runs
//! of bright pixels as wide as a painted marking (single saturated pixels and washed-out
//! rows are rejected by their width), each placed to a fraction of a pixel by its
//! brightness-weighted centre; in each row the run nearest to where the previous
//! frame's lane puts the left and the right marking, within a gate, is taken as that
//! marking and turned into a point of the lane's centre line (half a lane width to the
//! side). A cubic `y(x) = c0 + c1 x + c2 x^2 + c3 x^3` is fitted to those points by least
//! squares; two more passes re-gate ever more tightly around the previous fit, so the
//! dashes' gaps, noise and a wrong prior cost accuracy only in the first pass. The cubic's coefficients are the
//! detection: offset `-c0`, heading `-c1`, curvature `2 c2`, curvature rate `6 c3`.
//!
//! Everything lives in fixed-size arrays inside the task, and the fit is a 4x4 Gaussian
//! elimination in a fixed order: the step never allocates, locks or does I/O, and its
//! result is bit-identical across runs. It must never see anything of the world but pixels.

use takt::task::{
    Declare, FloatParam, Reader, StepContext, Task, TaskBuildError, TaskBuilder, TaskReport, Writer,
};

use crate::messages::{
    row_distance_m, LaneDetection, LaneImage, Pixels, IMAGE_COLUMNS, IMAGE_COLUMN_STEP_M,
    IMAGE_ROWS, TOPIC_LANE_DETECTION, TOPIC_LANE_IMAGE,
};

/// The most marking candidates kept per row; more bright runs than this in one row is
/// clutter, and the rest of the row is ignored.
pub const MAX_RUNS_PER_ROW: usize = 8;

/// Distances are scaled by this before fitting, so the normal equations' entries stay
/// within a few orders of magnitude of each other (x^6 at 36 m is 2e9; (x/20)^6 is 34).
const FIT_SCALE_M: f64 = 20.0;

/// How the detector finds markings and when it trusts a fit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetectorParams {
    /// The lane width the detector assumes when it sees one marking of a row only.
    pub lane_width_m: f64,
    /// Grey level from which a pixel counts as paint.
    pub threshold: u8,
    /// Grey level of asphalt as the camera delivers it (with its mean noise): a marking's
    /// position is the mean of its columns weighted by how much brighter than this they are.
    pub background_grey: u8,
    /// Widths (pixels) a run of paint may have to count as a marking.
    pub min_run_px: usize,
    pub max_run_px: usize,
    /// First pass: a marking may be this far from where the prior puts it, plus
    /// `first_gate_per_m` per metre ahead (the prior's heading error grows with distance).
    pub first_gate_m: f64,
    pub first_gate_per_m: f64,
    /// Last pass: this far from the previous pass's fit (the pass before: twice this).
    pub second_gate_m: f64,
    /// Fewer marking points than this is no detection.
    pub min_points: u32,
    /// A fit stays the prior for this many frames without a new one, then the detector
    /// starts again from a straight, centred lane.
    pub prior_frames: u32,
}

pub const LANE_WIDTH_M: FloatParam = FloatParam::new("lane_width_m", 3.5, 2.0, 6.0);
pub const FIRST_GATE_M: FloatParam = FloatParam::new("first_gate_m", 0.5, 0.01, 1.7);
pub const FIRST_GATE_PER_M: FloatParam = FloatParam::new("first_gate_per_m", 0.02, 0.0, 0.1);
pub const SECOND_GATE_M: FloatParam = FloatParam::new("second_gate_m", 0.2, 0.01, 1.7);

pub const THRESHOLD: FloatParam = FloatParam::new("threshold", 128.0, 1.0, 255.0);
pub const BACKGROUND_GREY: FloatParam = FloatParam::new("background_grey", 76.0, 0.0, 254.0);
/// At most `max_run_px` (checked when the task is built).
pub const MIN_RUN_PX: FloatParam = FloatParam::new("min_run_px", 2.0, 1.0, 64.0);
pub const MAX_RUN_PX: FloatParam = FloatParam::new("max_run_px", 8.0, 1.0, 64.0);
pub const MIN_POINTS: FloatParam = FloatParam::new("min_points", 16.0, 4.0, 128.0);
pub const PRIOR_FRAMES: FloatParam = FloatParam::new("prior_frames", 10.0, 0.0, 1000.0);

/// Every parameter this task reads, as its catalog declares them.
pub const PARAMS: &[&dyn Declare] = &[
    &LANE_WIDTH_M,
    &FIRST_GATE_M,
    &FIRST_GATE_PER_M,
    &SECOND_GATE_M,
    &THRESHOLD,
    &BACKGROUND_GREY,
    &MIN_RUN_PX,
    &MAX_RUN_PX,
    &MIN_POINTS,
    &PRIOR_FRAMES,
];

impl Default for DetectorParams {
    fn default() -> Self {
        DetectorParams {
            lane_width_m: LANE_WIDTH_M.default,
            threshold: THRESHOLD.default as u8,
            background_grey: BACKGROUND_GREY.default as u8,
            min_run_px: MIN_RUN_PX.default as usize,
            max_run_px: MAX_RUN_PX.default as usize,
            first_gate_m: FIRST_GATE_M.default,
            first_gate_per_m: FIRST_GATE_PER_M.default,
            second_gate_m: SECOND_GATE_M.default,
            min_points: MIN_POINTS.default as u32,
            prior_frames: PRIOR_FRAMES.default as u32,
        }
    }
}

/// The lane's centre line in the vehicle's frame: `y(x) = c[0] + c[1] x + c[2] x^2 + c[3] x^3`
/// metres to the left at `x` metres ahead.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LaneCurve {
    pub c: [f64; 4],
}

impl LaneCurve {
    pub fn at(&self, x: f64) -> f64 {
        let [c0, c1, c2, c3] = self.c;
        c0 + x * (c1 + x * (c2 + x * c3))
    }
}

/// The bright runs of one frame: per row, the lateral positions of up to
/// [`MAX_RUNS_PER_ROW`] marking-wide runs.
#[derive(Clone, Copy, Debug)]
struct Runs {
    lateral_m: [[f64; MAX_RUNS_PER_ROW]; IMAGE_ROWS],
    count: [usize; IMAGE_ROWS],
}

/// The detector: parameters, scratch space and the prior.
#[derive(Clone, Debug)]
pub struct Detector {
    pub params: DetectorParams,
    runs: Runs,
    prior: Option<LaneCurve>,
    frames_since_fit: u32,
}

/// Solves the 4x4 system `a x = b` by Gaussian elimination with partial pivoting, in a
/// fixed order. `None` if it is (numerically) singular. Indexed loops, as the algorithm is
/// written in every textbook, so it can be checked against one.
#[allow(clippy::needless_range_loop)]
fn solve4(mut a: [[f64; 4]; 4], mut b: [f64; 4]) -> Option<[f64; 4]> {
    let scale = a
        .iter()
        .flatten()
        .fold(0.0f64, |m, v| if v.abs() > m { v.abs() } else { m });
    if scale == 0.0 {
        return None;
    }
    for col in 0..4 {
        let mut pivot = col;
        for row in col + 1..4 {
            if a[row][col].abs() > a[pivot][col].abs() {
                pivot = row;
            }
        }
        if a[pivot][col].abs() <= scale * 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..4 {
            let f = a[row][col] / a[col][col];
            for k in col..4 {
                a[row][k] -= f * a[col][k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; 4];
    for col in (0..4).rev() {
        let mut s = b[col];
        for k in col + 1..4 {
            s -= a[col][k] * x[k];
        }
        x[col] = s / a[col][col];
    }
    Some(x)
}

impl Detector {
    pub fn new(params: DetectorParams) -> Self {
        Detector {
            params,
            runs: Runs {
                lateral_m: [[0.0; MAX_RUNS_PER_ROW]; IMAGE_ROWS],
                count: [0; IMAGE_ROWS],
            },
            prior: None,
            frames_since_fit: 0,
        }
    }

    /// The sub-pixel centre column of the run `first..=last`: its columns and one more on
    /// either side (a marking's partly covered edge pixels may be below the threshold),
    /// weighted by their brightness above the asphalt's.
    fn paint_centre(
        line: &[u8; IMAGE_COLUMNS],
        first: usize,
        last: usize,
        p: DetectorParams,
    ) -> f64 {
        let from = first.saturating_sub(1);
        let to = (last + 1).min(IMAGE_COLUMNS - 1);
        let (mut sum, mut weight) = (0.0, 0.0);
        for (column, &v) in line.iter().enumerate().take(to + 1).skip(from) {
            let w = f64::from(v.saturating_sub(p.background_grey));
            sum += w * column as f64;
            weight += w;
        }
        // The run's own pixels are above the threshold, so the weight is positive unless
        // the threshold is at or below the background; then the plain middle is used.
        if weight > 0.0 {
            sum / weight
        } else {
            (first + last) as f64 / 2.0
        }
    }

    /// Finds the marking-wide bright runs of every row.
    fn scan(&mut self, pixels: &Pixels) {
        let p = self.params;
        for (row, line) in pixels.iter().enumerate() {
            let mut count = 0;
            let mut start: Option<usize> = None;
            // One column past the end closes a run that touches the image's right edge.
            for column in 0..=IMAGE_COLUMNS {
                let bright = column < IMAGE_COLUMNS && line[column] >= p.threshold;
                match (bright, start) {
                    (true, None) => start = Some(column),
                    (false, Some(first)) => {
                        start = None;
                        let width = column - first;
                        if (p.min_run_px..=p.max_run_px).contains(&width)
                            && count < MAX_RUNS_PER_ROW
                        {
                            let centre_column = Self::paint_centre(line, first, column - 1, p);
                            self.runs.lateral_m[row][count] =
                                (IMAGE_COLUMNS as f64 / 2.0 - 0.5 - centre_column)
                                    * IMAGE_COLUMN_STEP_M;
                            count += 1;
                        }
                    }
                    _ => {}
                }
            }
            self.runs.count[row] = count;
        }
    }

    /// One fitting pass: the markings nearest to where `prior` puts them, within
    /// `gate_m(x)`, as points of the centre line, and the least-squares cubic through them.
    fn fit(&self, prior: &LaneCurve, gate_m: impl Fn(f64) -> f64) -> Option<(LaneCurve, u32)> {
        let half_lane_m = self.params.lane_width_m / 2.0;
        let mut normal = [[0.0f64; 4]; 4];
        let mut rhs = [0.0f64; 4];
        let mut points = 0u32;
        for row in 0..IMAGE_ROWS {
            let x = row_distance_m(row);
            let predicted_centre = prior.at(x);
            let gate = gate_m(x);
            let runs = &self.runs.lateral_m[row][..self.runs.count[row]];
            for side in [1.0, -1.0] {
                let expected = predicted_centre + side * half_lane_m;
                let mut best: Option<(f64, f64)> = None;
                for &run in runs {
                    let distance = (run - expected).abs();
                    if distance <= gate && best.is_none_or(|(d, _)| distance < d) {
                        best = Some((distance, run));
                    }
                }
                if let Some((_, run)) = best {
                    let centre = run - side * half_lane_m;
                    let u = x / FIT_SCALE_M;
                    let phi = [1.0, u, u * u, u * u * u];
                    for i in 0..4 {
                        for k in 0..4 {
                            normal[i][k] += phi[i] * phi[k];
                        }
                        rhs[i] += phi[i] * centre;
                    }
                    points += 1;
                }
            }
        }
        if points < self.params.min_points {
            return None;
        }
        let s = solve4(normal, rhs)?;
        let curve = LaneCurve {
            c: [
                s[0],
                s[1] / FIT_SCALE_M,
                s[2] / (FIT_SCALE_M * FIT_SCALE_M),
                s[3] / (FIT_SCALE_M * FIT_SCALE_M * FIT_SCALE_M),
            ],
        };
        Some((curve, points))
    }

    /// The lane in `pixels`, or `None` if too few markings were found. Updates the prior.
    pub fn detect(&mut self, pixels: &Pixels) -> Option<(LaneCurve, u32)> {
        self.scan(pixels);
        let p = self.params;
        let prior = self.prior.unwrap_or_default();
        // Three passes: around the prior with a gate that widens with distance, then twice
        // around the previous pass's fit, the gate halving to `second_gate_m`: each pass
        // reaches further rows, so a wrong prior (the first frame, a sharp bend ahead)
        // costs a pass, not the detection.
        let found = self
            .fit(&prior, |x| p.first_gate_m + p.first_gate_per_m * x)
            .and_then(|(first, _)| self.fit(&first, |_| 2.0 * p.second_gate_m))
            .and_then(|(second, _)| self.fit(&second, |_| p.second_gate_m));
        match found {
            Some((curve, _)) => {
                self.prior = Some(curve);
                self.frames_since_fit = 0;
            }
            None => {
                self.frames_since_fit += 1;
                if self.frames_since_fit > p.prior_frames {
                    self.prior = None;
                }
            }
        }
        found
    }
}

/// The detection a fitted curve stands for.
pub fn detection_of(curve: &LaneCurve, points: u32, time_ns: u64) -> LaneDetection {
    let [c0, c1, c2, c3] = curve.c;
    LaneDetection {
        time_ns,
        lateral_offset_m: -c0,
        heading_error_rad: -c1,
        curvature_per_m: 2.0 * c2,
        curvature_rate_per_m2: 6.0 * c3,
        points,
        valid: lane_msgs::TRUE,
    }
}

/// The detector task.
pub struct LaneDetect {
    image_in: Reader<LaneImage>,
    detection_out: Writer<LaneDetection>,
    detector: Box<Detector>,
    frames: u64,
    detections: u64,
    points: u64,
    publish_errors: u64,
}

/// Builds the `lane_detect` task from its manifest parameters.
pub fn build(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    let max_run_px = b.get(&MAX_RUN_PX)? as usize;
    let p = DetectorParams {
        lane_width_m: b.get(&LANE_WIDTH_M)?,
        threshold: b.get(&THRESHOLD)? as u8,
        background_grey: b.get(&BACKGROUND_GREY)? as u8,
        min_run_px: b.get(&FloatParam {
            max: max_run_px as f64,
            ..MIN_RUN_PX
        })? as usize,
        max_run_px,
        first_gate_m: b.get(&FIRST_GATE_M)?,
        first_gate_per_m: b.get(&FIRST_GATE_PER_M)?,
        second_gate_m: b.get(&SECOND_GATE_M)?,
        min_points: b.get(&MIN_POINTS)? as u32,
        prior_frames: b.get(&PRIOR_FRAMES)? as u32,
    };
    Ok(Box::new(LaneDetect {
        image_in: b.reader(TOPIC_LANE_IMAGE)?,
        detection_out: b.writer(TOPIC_LANE_DETECTION)?,
        detector: Box::new(Detector::new(p)),
        frames: 0,
        detections: 0,
        points: 0,
        publish_errors: 0,
    }))
}

impl Task for LaneDetect {
    fn step(&mut self, ctx: &StepContext) {
        let release_ns = ctx.release_ns();
        let detector = &mut self.detector;
        // The frame is scanned where it lies, in shared memory: no copy of its 16 KiB.
        let detection = match self.image_in.read(ctx) {
            Some(image) if image.valid == lane_msgs::TRUE => {
                let capture_ns = image.capture_ns;
                let found = detector.detect(&image.pixels);
                Some(match found {
                    Some((curve, points)) => detection_of(&curve, points, capture_ns),
                    None => LaneDetection {
                        time_ns: capture_ns,
                        ..LaneDetection::default()
                    },
                })
            }
            Some(image) => Some(LaneDetection {
                time_ns: image.capture_ns,
                ..LaneDetection::default()
            }),
            // No frame yet: nothing to report.
            None => None,
        };
        let Some(detection) = detection else {
            return;
        };
        debug_assert!(detection.time_ns <= release_ns);
        self.frames += 1;
        if detection.valid == lane_msgs::TRUE {
            self.detections += 1;
            self.points += u64::from(detection.points);
        }
        if self.detection_out.publish(ctx, |d| *d = detection).is_err() {
            self.publish_errors += 1;
        }
    }

    fn finish(&mut self, report: &mut TaskReport) {
        report.outcome.push((
            "detections".into(),
            format!("{}/{} frames", self.detections, self.frames),
        ));
        if self.detections > 0 {
            report.outcome.push((
                "mean_points".into(),
                format!("{:.1}", self.points as f64 / self.detections as f64),
            ));
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
    use crate::camera::{truth_of, CameraModel, CameraParams};

    fn render(model: &mut CameraModel, truth: &lane_msgs::VehicleTruth) -> Box<Pixels> {
        let mut pixels = Box::new([[0u8; IMAGE_COLUMNS]; IMAGE_ROWS]);
        model.render(truth, &mut pixels);
        pixels
    }

    #[test]
    fn solve4_solves_and_refuses_singular_systems() {
        let a = [
            [4.0, 1.0, 0.0, 0.0],
            [1.0, 3.0, 1.0, 0.0],
            [0.0, 1.0, 2.0, 1.0],
            [0.0, 0.0, 1.0, 5.0],
        ];
        let x = [1.0, -2.0, 3.0, 0.5];
        let b: Vec<f64> = a
            .iter()
            .map(|r| r.iter().zip(x).map(|(a, x)| a * x).sum())
            .collect();
        let s = solve4(a, [b[0], b[1], b[2], b[3]]).unwrap();
        for (s, x) in s.iter().zip(x) {
            assert!((s - x).abs() < 1e-12);
        }
        assert!(solve4([[1.0; 4]; 4], [1.0; 4]).is_none());
        assert!(solve4([[0.0; 4]; 4], [1.0; 4]).is_none());
    }

    /// The estimate is within what the pixels allow. A marking's centre comes out of its
    /// grey levels to about 5 mm (one standard deviation, measured); a cubic fitted to
    /// 64-88 such points from 5 m to 36.5 m ahead and extrapolated to the vehicle has then
    /// about 6 mm, 1.1 mrad and 1.1e-4 1/m of noise in offset, heading and curvature. Each
    /// frame must be within about five of those, and the mean over 30 frames (fresh noise
    /// each) within a fraction of one: that catches a biased or mis-scaled detector, which
    /// noise cannot hide.
    #[test]
    fn detects_offset_heading_and_curvature_within_tolerance() {
        let cases = [
            (0.0, 0.0, 0.0, 0.0),
            (0.3, 0.0, 0.0, 0.0),
            (-0.6, 0.02, 1.0 / 300.0, 0.0),
            (0.2, -0.03, -1.0 / 250.0, 0.0),
            (0.1, 0.01, 1.0 / 600.0, 1.0 / 300.0 / 50.0),
        ];
        const FRAMES: usize = 30;
        for (i, &(offset, heading, curvature, rate)) in cases.iter().enumerate() {
            let truth = truth_of(offset, heading, curvature, rate);
            let mut camera = CameraModel::new(
                CameraParams {
                    glare: 0.0,
                    ..CameraParams::default()
                },
                100 + i as u64,
            );
            let mut detector = Detector::new(DetectorParams::default());
            let mut sum = (0.0, 0.0, 0.0);
            // The first frame starts from a straight, centred prior; the next ones track.
            for frame in 0..FRAMES {
                let pixels = render(&mut camera, &truth);
                let (curve, points) = detector
                    .detect(&pixels)
                    .unwrap_or_else(|| panic!("case {i} frame {frame}: no detection"));
                let d = detection_of(&curve, points, 0);
                assert!(points >= 64, "case {i}: {points} points");
                let err = (
                    d.lateral_offset_m - offset,
                    d.heading_error_rad - heading,
                    d.curvature_per_m - curvature,
                );
                assert!(err.0.abs() < 0.03, "case {i} frame {frame}: {err:?} {d:?}");
                assert!(err.1.abs() < 0.006, "case {i} frame {frame}: {err:?} {d:?}");
                assert!(err.2.abs() < 6e-4, "case {i} frame {frame}: {err:?} {d:?}");
                sum = (sum.0 + err.0, sum.1 + err.1, sum.2 + err.2);
            }
            let n = FRAMES as f64;
            let mean = (sum.0 / n, sum.1 / n, sum.2 / n);
            assert!(mean.0.abs() < 0.004, "case {i}: mean error {mean:?}");
            assert!(mean.1.abs() < 0.0008, "case {i}: mean error {mean:?}");
            assert!(mean.2.abs() < 8e-5, "case {i}: mean error {mean:?}");
        }
    }

    #[test]
    fn glare_and_blank_frames_are_no_detection() {
        let truth = truth_of(0.0, 0.0, 0.0, 0.0);
        let mut blind = CameraModel::new(
            CameraParams {
                glare: 1.0,
                ..CameraParams::default()
            },
            1,
        );
        let mut detector = Detector::new(DetectorParams::default());
        assert!(detector.detect(&render(&mut blind, &truth)).is_none());
        let blank = Box::new([[60u8; IMAGE_COLUMNS]; IMAGE_ROWS]);
        assert!(detector.detect(&blank).is_none());
    }
}

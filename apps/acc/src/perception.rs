//! The `perception` task: camera range estimation and radar/camera fusion.
//!
//! Owns: the estimate of the vehicle ahead that the planner acts on. From a camera frame it
//! measures the lead's box on one row and one column through the optical centre (5 KiB of
//! the 4 MiB, read in place in shared memory: the frame is never copied) and converts its
//! width and height to a range with the pinhole model. It fuses that with the radar track by
//! inverse-variance weighting, after carrying each measurement forward to the perception
//! job's release with the range rate. When one sensor is stale or absent (the camera is not
//! released in the `degraded` mode, the radar drops out) it falls back to the other; with
//! neither it reports no object. It must never command anything, and its step never
//! allocates, locks or does I/O.

use takt::task::{
    Declare, FloatParam, MsParam, Reader, StepContext, Task, TaskBuildError, TaskBuilder,
    TaskReport, Writer,
};

use crate::camera::{decode, CENTER_COL, FOCAL_PX, HORIZON_ROW, LEAD_HEIGHT_M, LEAD_WIDTH_M};
use crate::messages::{
    CameraFrame, FusedObject, Pixels, RadarTrack, FALSE, FRAME_HEIGHT, FRAME_WIDTH, SOURCE_CAMERA,
    SOURCE_RADAR, TOPIC_CAMERA_FRAME, TOPIC_FUSED_OBJECT, TOPIC_RADAR_TRACK, TRUE,
};
use crate::params::ns_to_s;
use crate::planner::fresh;

/// The lead's box as measured in a frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CameraEstimate {
    pub range_m: f64,
    /// One-sigma uncertainty from the sub-pixel quantization of the box edges.
    pub range_std_m: f64,
    /// Measured box width and height in pixels; 0 for a dimension that was clipped by the
    /// frame border (the vehicle is too close to measure it).
    pub width_px: f64,
    pub height_px: f64,
}

/// A box narrower than this is too small to measure reliably.
const MIN_BOX_PX: f64 = 2.0;
/// The edge quantization (1/88 px per edge) plus margin, as a width uncertainty in pixels.
const EDGE_STD_PX: f64 = 0.02;

/// Sums the vehicle coverage along a line; `None` if the box touches the frame border
/// there (clipped: its true extent is unknown).
fn extent_px(first: u8, last: u8, values: impl Iterator<Item = u8>) -> Option<f64> {
    if decode(first) > 0.0 || decode(last) > 0.0 {
        return None;
    }
    Some(values.map(decode).sum())
}

/// Measures the lead vehicle's box on the centre row and the centre column of `pixels`.
pub fn estimate_range(pixels: &Pixels) -> Option<CameraEstimate> {
    let row = &pixels[HORIZON_ROW];
    let width_px =
        extent_px(row[0], row[FRAME_WIDTH - 1], row.iter().copied()).filter(|&w| w >= MIN_BOX_PX);
    let height_px = extent_px(
        pixels[0][CENTER_COL],
        pixels[FRAME_HEIGHT - 1][CENTER_COL],
        pixels.iter().map(|r| r[CENTER_COL]),
    )
    .filter(|&h| h >= MIN_BOX_PX);
    // Weighted by squared size: the relative error of each is EDGE_STD_PX / size.
    let (mut sum, mut weight) = (0.0, 0.0);
    if let Some(w) = width_px {
        sum += FOCAL_PX * LEAD_WIDTH_M / w * w * w;
        weight += w * w;
    }
    if let Some(h) = height_px {
        sum += FOCAL_PX * LEAD_HEIGHT_M / h * h * h;
        weight += h * h;
    }
    if weight <= 0.0 {
        return None;
    }
    let range_m = sum / weight;
    // The best single dimension bounds the relative error.
    let size_px = width_px.unwrap_or(0.0).max(height_px.unwrap_or(0.0));
    Some(CameraEstimate {
        range_m,
        range_std_m: range_m * EDGE_STD_PX / size_px + 0.01,
        width_px: width_px.unwrap_or(0.0),
        height_px: height_px.unwrap_or(0.0),
    })
}

/// One sensor's view of the lead, at the instant it was measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fix {
    pub range_m: f64,
    pub range_std_m: f64,
    /// `None` if the sensor has no rate (a camera's first frame).
    pub range_rate_mps: Option<f64>,
    pub time_ns: u64,
}

impl Fix {
    /// The range carried forward to `now_ns` with `rate_mps`.
    fn range_at(&self, now_ns: u64, rate_mps: f64) -> f64 {
        let age_s = ns_to_s(now_ns.saturating_sub(self.time_ns));
        (self.range_m + rate_mps * age_s).max(0.0)
    }
}

/// Fuses the radar and camera fixes (either may be missing) into the object at `now_ns`.
pub fn fuse(now_ns: u64, radar: Option<Fix>, camera: Option<Fix>) -> FusedObject {
    let rate_mps = radar
        .and_then(|r| r.range_rate_mps)
        .or_else(|| camera.and_then(|c| c.range_rate_mps));
    let carry = rate_mps.unwrap_or(0.0);
    let (range_m, range_std_m, sources) = match (radar, camera) {
        (Some(r), Some(c)) => {
            let (wr, wc) = (
                1.0 / (r.range_std_m * r.range_std_m),
                1.0 / (c.range_std_m * c.range_std_m),
            );
            let range_m =
                (r.range_at(now_ns, carry) * wr + c.range_at(now_ns, carry) * wc) / (wr + wc);
            // sqrt is exactly rounded by IEEE 754, so this stays bit-reproducible.
            (
                range_m,
                (1.0 / (wr + wc)).sqrt(),
                SOURCE_RADAR | SOURCE_CAMERA,
            )
        }
        (Some(r), None) => (r.range_at(now_ns, carry), r.range_std_m, SOURCE_RADAR),
        (None, Some(c)) => (c.range_at(now_ns, carry), c.range_std_m, SOURCE_CAMERA),
        (None, None) => (0.0, 0.0, 0),
    };
    FusedObject {
        time_ns: now_ns,
        range_m,
        range_rate_mps: carry,
        range_std_m,
        valid: if sources != 0 { TRUE } else { FALSE },
        sources,
    }
}

/// Holds the radar's last detection through short dropouts: a cycle without a detection
/// does not erase a detection that is still younger than the timeout.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RadarHold {
    last: Option<Fix>,
}

impl RadarHold {
    /// Takes the newest radar track; only detections replace the held fix.
    pub fn update(&mut self, track: &RadarTrack, range_std_m: f64) {
        if track.valid == TRUE {
            self.last = Some(Fix {
                range_m: track.range_m,
                range_std_m,
                range_rate_mps: Some(track.range_rate_mps),
                time_ns: track.time_ns,
            });
        }
    }

    /// The held detection if it is at most `timeout_ns` old at `now_ns`.
    pub fn fix(&self, now_ns: u64, timeout_ns: u64) -> Option<Fix> {
        self.last.filter(|f| fresh(now_ns, f.time_ns, timeout_ns))
    }
}

/// Tracks the camera's range over frames to give it a range rate of its own, for when the
/// radar is out.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CameraTrack {
    last: Option<Fix>,
    rate_mps: Option<f64>,
}

impl CameraTrack {
    /// Smoothing of the differenced rate: new = old + GAIN * (raw - old).
    const GAIN: f64 = 0.5;

    /// Takes the estimate of a new frame captured at `capture_ns`; a gap longer than
    /// `timeout_ns` since the previous frame restarts the rate.
    pub fn update(&mut self, estimate: CameraEstimate, capture_ns: u64, timeout_ns: u64) -> Fix {
        let rate_mps = match self.last {
            Some(prev) if capture_ns > prev.time_ns && capture_ns - prev.time_ns <= timeout_ns => {
                let raw = (estimate.range_m - prev.range_m) / ns_to_s(capture_ns - prev.time_ns);
                Some(match self.rate_mps {
                    Some(old) => old + Self::GAIN * (raw - old),
                    None => raw,
                })
            }
            _ => None,
        };
        let fix = Fix {
            range_m: estimate.range_m,
            range_std_m: estimate.range_std_m,
            range_rate_mps: rate_mps,
            time_ns: capture_ns,
        };
        self.last = Some(fix);
        self.rate_mps = rate_mps;
        fix
    }

    /// Forgets the lead (the camera lost it).
    pub fn lose(&mut self) {
        *self = CameraTrack::default();
    }

    pub fn last(&self) -> Option<Fix> {
        self.last
    }
}

/// The perception task.
pub struct Perception {
    radar_in: Reader<RadarTrack>,
    frame_in: Reader<CameraFrame>,
    object_out: Writer<FusedObject>,
    radar_std_m: f64,
    radar_timeout_ns: u64,
    camera_timeout_ns: u64,
    /// Sequence number of the last frame measured, so each frame is scanned once.
    last_frame_seq: u64,
    radar: RadarHold,
    camera: CameraTrack,
    fused_jobs: u64,
    radar_only_jobs: u64,
    camera_only_jobs: u64,
    no_object_jobs: u64,
    frames_measured: u64,
    frame_seq_mismatches: u64,
    publish_errors: u64,
}

pub const RADAR_RANGE_STD_M: FloatParam = FloatParam::new("radar_range_std_m", 0.1, 0.001, 10.0);
pub const RADAR_TIMEOUT_MS: MsParam = MsParam::new("radar_timeout_ms", 45.0, 1.0, 10_000.0);
pub const CAMERA_TIMEOUT_MS: MsParam = MsParam::new("camera_timeout_ms", 100.0, 1.0, 10_000.0);

/// Every parameter this task reads, as its catalog declares them.
pub const PARAMS: &[&dyn Declare] = &[&RADAR_RANGE_STD_M, &RADAR_TIMEOUT_MS, &CAMERA_TIMEOUT_MS];

/// Builds the `perception` task from its manifest parameters.
pub fn build(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    Ok(Box::new(Perception {
        radar_in: b.reader(TOPIC_RADAR_TRACK)?,
        frame_in: b.reader(TOPIC_CAMERA_FRAME)?,
        object_out: b.writer(TOPIC_FUSED_OBJECT)?,
        radar_std_m: b.get(&RADAR_RANGE_STD_M)?,
        radar_timeout_ns: b.get(&RADAR_TIMEOUT_MS)?,
        camera_timeout_ns: b.get(&CAMERA_TIMEOUT_MS)?,
        last_frame_seq: 0,
        radar: RadarHold::default(),
        camera: CameraTrack::default(),
        fused_jobs: 0,
        radar_only_jobs: 0,
        camera_only_jobs: 0,
        no_object_jobs: 0,
        frames_measured: 0,
        frame_seq_mismatches: 0,
        publish_errors: 0,
    }))
}

impl Task for Perception {
    fn step(&mut self, ctx: &StepContext) {
        let now_ns = ctx.release_ns();
        if let Some(track) = self.radar_in.read(ctx) {
            self.radar.update(&track, self.radar_std_m);
        }
        let radar = self.radar.fix(now_ns, self.radar_timeout_ns);

        // The frame stays in shared memory: `frame` borrows it for the scan only.
        if let Some(frame) = self.frame_in.read(ctx) {
            let seq = frame.seq();
            if seq != self.last_frame_seq {
                self.last_frame_seq = seq;
                if frame.seq != seq {
                    self.frame_seq_mismatches += 1;
                }
                if frame.valid == TRUE {
                    self.frames_measured += 1;
                    match estimate_range(&frame.pixels) {
                        Some(e) => {
                            self.camera
                                .update(e, frame.capture_ns, self.camera_timeout_ns);
                        }
                        None => self.camera.lose(),
                    }
                }
            }
        }
        let camera = self
            .camera
            .last()
            .filter(|c| fresh(now_ns, c.time_ns, self.camera_timeout_ns));

        let object = fuse(now_ns, radar, camera);
        match object.sources {
            s if s == SOURCE_RADAR | SOURCE_CAMERA => self.fused_jobs += 1,
            SOURCE_RADAR => self.radar_only_jobs += 1,
            SOURCE_CAMERA => self.camera_only_jobs += 1,
            _ => self.no_object_jobs += 1,
        }
        if self.object_out.publish(ctx, |o| *o = object).is_err() {
            self.publish_errors += 1;
        }
    }

    fn finish(&mut self, report: &mut TaskReport) {
        let mut line = |k: &str, v: u64| report.outcome.push((k.to_string(), v.to_string()));
        line("fused_jobs", self.fused_jobs);
        line("radar_only_jobs", self.radar_only_jobs);
        line("camera_only_jobs", self.camera_only_jobs);
        line("no_object_jobs", self.no_object_jobs);
        line("frames_measured", self.frames_measured);
        if self.frame_seq_mismatches > 0 {
            line("frame_seq_mismatches", self.frame_seq_mismatches);
        }
        if self.publish_errors > 0 {
            line("publish_errors", self.publish_errors);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::{render, Scene};

    fn rendered(range_m: f64) -> Box<CameraFrame> {
        let mut f: Box<CameraFrame> = bytemuck::zeroed_box();
        render(
            &mut f.pixels,
            &Scene {
                lead_range_m: Some(range_m),
                odometer_m: 17.0,
            },
        );
        f
    }

    #[test]
    fn range_from_box_matches_the_rendered_range() {
        for range_m in [3.0, 7.5, 12.0, 25.0, 38.0, 61.3, 100.0, 180.0] {
            let f = rendered(range_m);
            let e = estimate_range(&f.pixels).expect("the lead is visible");
            let err = (e.range_m - range_m).abs();
            assert!(
                err <= 0.002 * range_m,
                "range {range_m}: estimated {} (w {} px, h {} px)",
                e.range_m,
                e.width_px,
                e.height_px
            );
            assert!(
                err <= 3.0 * e.range_std_m,
                "std {} too small",
                e.range_std_m
            );
        }
    }

    #[test]
    fn a_box_clipped_in_one_dimension_uses_the_other() {
        // At 2.5 m the box is 1440 px wide (fits) and 1200 px high (clipped by 1024 rows).
        let f = rendered(2.5);
        let e = estimate_range(&f.pixels).expect("width still measurable");
        assert_eq!(e.height_px, 0.0);
        assert!((e.range_m - 2.5).abs() < 0.01, "{}", e.range_m);
        // At 0.6 m it is clipped both ways: no estimate rather than a wrong one.
        assert_eq!(estimate_range(&rendered(0.6).pixels), None);
    }

    #[test]
    fn empty_road_gives_no_estimate() {
        let mut f: Box<CameraFrame> = bytemuck::zeroed_box();
        render(
            &mut f.pixels,
            &Scene {
                lead_range_m: None,
                odometer_m: 3.0,
            },
        );
        assert_eq!(estimate_range(&f.pixels), None);
    }

    fn fix(range_m: f64, std: f64, rate: Option<f64>, time_ns: u64) -> Fix {
        Fix {
            range_m,
            range_std_m: std,
            range_rate_mps: rate,
            time_ns,
        }
    }

    #[test]
    fn fusion_weights_by_variance_and_falls_back_to_either_sensor() {
        let now = 100_000_000;
        let radar = fix(30.0, 0.1, Some(-1.0), now);
        let camera = fix(31.0, 0.3, None, now);
        let both = fuse(now, Some(radar), Some(camera));
        assert_eq!(both.sources, SOURCE_RADAR | SOURCE_CAMERA);
        assert!((both.range_m - 30.1).abs() < 1e-9, "{}", both.range_m);
        assert!(both.range_std_m < 0.1);
        assert_eq!(both.range_rate_mps, -1.0);

        let radar_only = fuse(now, Some(radar), None);
        assert_eq!(
            (radar_only.sources, radar_only.range_m),
            (SOURCE_RADAR, 30.0)
        );

        // Camera only: the frame is 40 ms old and closing at 2 m/s: carried forward.
        let cam = fix(31.0, 0.3, Some(-2.0), now - 40_000_000);
        let camera_only = fuse(now, None, Some(cam));
        assert_eq!(camera_only.sources, SOURCE_CAMERA);
        assert!((camera_only.range_m - 30.92).abs() < 1e-9);
        assert_eq!(camera_only.valid, TRUE);

        let none = fuse(now, None, None);
        assert_eq!((none.valid, none.sources), (FALSE, 0));
    }

    #[test]
    fn radar_hold_bridges_a_dropout_but_not_a_timeout() {
        let ms = 1_000_000;
        let track = |valid, time_ns| RadarTrack {
            time_ns,
            range_m: 30.0,
            range_rate_mps: -1.0,
            valid,
            _pad: 0,
        };
        let mut h = RadarHold::default();
        assert_eq!(h.fix(0, 30 * ms), None);
        h.update(&track(TRUE, 0), 0.1);
        h.update(&track(FALSE, 10 * ms), 0.1);
        assert_eq!(h.fix(12 * ms, 30 * ms).map(|f| f.time_ns), Some(0));
        h.update(&track(FALSE, 20 * ms), 0.1);
        h.update(&track(FALSE, 30 * ms), 0.1);
        assert_eq!(h.fix(32 * ms, 30 * ms), None, "stale after the timeout");
    }

    #[test]
    fn camera_track_differentiates_range_over_frames() {
        let mut t = CameraTrack::default();
        let est = |r: f64| CameraEstimate {
            range_m: r,
            range_std_m: 0.05,
            width_px: 100.0,
            height_px: 80.0,
        };
        let ms = 1_000_000;
        assert_eq!(t.update(est(30.0), 0, 100 * ms).range_rate_mps, None);
        let f = t.update(est(29.6), 40 * ms, 100 * ms);
        assert!((f.range_rate_mps.unwrap_or(0.0) - -10.0).abs() < 1e-9);
        // A gap beyond the timeout restarts the rate instead of differencing across it.
        assert_eq!(t.update(est(20.0), 400 * ms, 100 * ms).range_rate_mps, None);
    }
}

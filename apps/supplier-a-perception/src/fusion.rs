//! The `lane_fusion` task: the lane relative to the vehicle, every 5 ms, from a camera that
//! measures it every 10 ms with a delay and an IMU and wheel speed that measure the
//! vehicle's own motion every millisecond.
//!
//! Owns: the lane estimate supplier A delivers to supplier B ([`LaneEstimate`]). Each job
//! first propagates the estimate to its release by dead reckoning: the heading error
//! changes by the IMU's yaw-angle increment minus the lane's own turn over the distance
//! driven, the offset by the distance driven times the heading error, the curvature by its
//! rate. Then, if a detection newer than the last one arrived, it brings the detection
//! forward from its capture instant to the release the same way and blends it in with fixed
//! gains (a steady-state Kalman filter: the camera's noise is a few centimetres, so it is
//! trusted strongly). Without detections for longer than `camera_timeout_ms` (glare, the
//! camera path switched off in the `degraded` mode) it keeps dead reckoning and says so in
//! the estimate; whether to keep steering on that is the planner's decision, not fusion's.
//!
//! The gyro's bias is not estimated: at 0.002 rad/s it moves the estimate by centimetres
//! over the second of dead reckoning the planner accepts. The step never allocates, locks or
//! does I/O.

use lane_msgs::{
    ImuSample, LaneEstimate, VehicleState, FALSE, TOPIC_IMU, TOPIC_LANE_ESTIMATE,
    TOPIC_VEHICLE_STATE, TRUE,
};
use takt::task::{
    Declare, FloatParam, MsParam, Reader, StepContext, Task, TaskBuildError, TaskBuilder,
    TaskReport, Writer,
};

use crate::messages::{LaneDetection, TOPIC_LANE_DETECTION};
use crate::params::{fresh, ns_to_s};

/// Gains and timeouts of the fusion.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FusionParams {
    /// Weight of a camera measurement in the offset, heading, curvature and curvature-rate
    /// estimates (0: ignore the camera, 1: take it as it is).
    pub offset_gain: f64,
    pub heading_gain: f64,
    pub curvature_gain: f64,
    pub curvature_rate_gain: f64,
    /// A camera measurement older than this leaves the estimate dead reckoning.
    pub camera_timeout_ns: u64,
    /// IMU and wheel-speed samples older than this are not used.
    pub motion_timeout_ns: u64,
}

pub const OFFSET_GAIN: FloatParam = FloatParam::new("offset_gain", 0.6, 0.0, 1.0);
pub const HEADING_GAIN: FloatParam = FloatParam::new("heading_gain", 0.6, 0.0, 1.0);
pub const CURVATURE_GAIN: FloatParam = FloatParam::new("curvature_gain", 0.4, 0.0, 1.0);
pub const CURVATURE_RATE_GAIN: FloatParam = FloatParam::new("curvature_rate_gain", 0.2, 0.0, 1.0);
pub const CAMERA_TIMEOUT_MS: MsParam = MsParam::new("camera_timeout_ms", 50.0, 1.0, 10_000.0);
pub const MOTION_TIMEOUT_MS: MsParam = MsParam::new("motion_timeout_ms", 10.0, 1.0, 1_000.0);

/// Every parameter this task reads, as its catalog declares them.
pub const PARAMS: &[&dyn Declare] = &[
    &OFFSET_GAIN,
    &HEADING_GAIN,
    &CURVATURE_GAIN,
    &CURVATURE_RATE_GAIN,
    &CAMERA_TIMEOUT_MS,
    &MOTION_TIMEOUT_MS,
];

impl Default for FusionParams {
    fn default() -> Self {
        FusionParams {
            offset_gain: OFFSET_GAIN.default,
            heading_gain: HEADING_GAIN.default,
            curvature_gain: CURVATURE_GAIN.default,
            curvature_rate_gain: CURVATURE_RATE_GAIN.default,
            camera_timeout_ns: CAMERA_TIMEOUT_MS.default_ns(),
            motion_timeout_ns: MOTION_TIMEOUT_MS.default_ns(),
        }
    }
}

/// The lane relative to the vehicle, in the terms of [`LaneEstimate`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LaneState {
    pub offset_m: f64,
    pub heading_rad: f64,
    pub curvature_per_m: f64,
    pub curvature_rate_per_m2: f64,
}

impl LaneState {
    /// The state after the vehicle drove `distance_m` along the lane while turning by
    /// `yaw_change_rad` (small angles: the heading changes by the vehicle's turn minus the
    /// lane's, the offset by the mean heading times the distance).
    pub fn propagated(&self, distance_m: f64, yaw_change_rad: f64) -> LaneState {
        let lane_turn_rad = self.curvature_per_m * distance_m
            + self.curvature_rate_per_m2 * distance_m * distance_m / 2.0;
        let heading_rad = self.heading_rad + yaw_change_rad - lane_turn_rad;
        LaneState {
            offset_m: self.offset_m + distance_m * (self.heading_rad + heading_rad) / 2.0,
            heading_rad,
            curvature_per_m: self.curvature_per_m + self.curvature_rate_per_m2 * distance_m,
            curvature_rate_per_m2: self.curvature_rate_per_m2,
        }
    }

    fn from_detection(d: &LaneDetection) -> LaneState {
        LaneState {
            offset_m: d.lateral_offset_m,
            heading_rad: d.heading_error_rad,
            curvature_per_m: d.curvature_per_m,
            curvature_rate_per_m2: d.curvature_rate_per_m2,
        }
    }
}

/// The vehicle's motion as the fusion sees it at one job: speed, yaw angle, yaw rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Motion {
    pub time_ns: u64,
    pub speed_mps: f64,
    /// The IMU's integrated yaw angle, `None` without a fresh IMU sample.
    pub yaw_angle_rad: Option<f64>,
    pub yaw_rate_radps: f64,
}

/// The filter: estimate, the motion it was last propagated with, and the camera's clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LaneFilter {
    pub params: FusionParams,
    pub state: Option<LaneState>,
    last_motion: Option<Motion>,
    /// Capture instant of the newest detection blended in (0: none).
    pub camera_time_ns: u64,
}

impl LaneFilter {
    pub fn new(params: FusionParams) -> Self {
        LaneFilter {
            params,
            state: None,
            last_motion: None,
            camera_time_ns: 0,
        }
    }

    /// Dead reckoning from the last job's motion to `now`. Without two IMU samples the
    /// vehicle is assumed to turn with the lane (the heading error holds).
    pub fn predict(&mut self, now: Motion) {
        if let (Some(state), Some(last)) = (self.state, self.last_motion) {
            let dt_s = ns_to_s(now.time_ns.saturating_sub(last.time_ns));
            let distance_m = now.speed_mps * dt_s;
            let yaw_change_rad = match (now.yaw_angle_rad, last.yaw_angle_rad) {
                (Some(a), Some(b)) => a - b,
                _ => {
                    state.curvature_per_m * distance_m
                        + state.curvature_rate_per_m2 * distance_m * distance_m / 2.0
                }
            };
            self.state = Some(state.propagated(distance_m, yaw_change_rad));
        }
        self.last_motion = Some(now);
    }

    /// Blends in a detection captured `age_s` before the current job, brought forward
    /// with the current speed and yaw rate. The first one initialises the estimate.
    pub fn correct(&mut self, detection: &LaneDetection, now: &Motion) {
        let age_s = ns_to_s(now.time_ns.saturating_sub(detection.time_ns));
        let distance_m = now.speed_mps * age_s;
        let measured =
            LaneState::from_detection(detection).propagated(distance_m, now.yaw_rate_radps * age_s);
        let p = self.params;
        self.state = Some(match self.state {
            None => measured,
            Some(s) => LaneState {
                offset_m: s.offset_m + p.offset_gain * (measured.offset_m - s.offset_m),
                heading_rad: s.heading_rad
                    + p.heading_gain * (measured.heading_rad - s.heading_rad),
                curvature_per_m: s.curvature_per_m
                    + p.curvature_gain * (measured.curvature_per_m - s.curvature_per_m),
                curvature_rate_per_m2: s.curvature_rate_per_m2
                    + p.curvature_rate_gain
                        * (measured.curvature_rate_per_m2 - s.curvature_rate_per_m2),
            },
        });
        self.camera_time_ns = detection.time_ns;
    }

    /// The estimate to publish at `now_ns`.
    pub fn estimate(&self, now_ns: u64) -> LaneEstimate {
        let s = self.state.unwrap_or_default();
        LaneEstimate {
            time_ns: now_ns,
            lateral_offset_m: s.offset_m,
            heading_error_rad: s.heading_rad,
            curvature_per_m: s.curvature_per_m,
            curvature_rate_per_m2: s.curvature_rate_per_m2,
            camera_time_ns: self.camera_time_ns,
            valid: if self.state.is_some() { TRUE } else { FALSE },
            dead_reckoning: if self.state.is_some()
                && !fresh(now_ns, self.camera_time_ns, self.params.camera_timeout_ns)
            {
                TRUE
            } else {
                FALSE
            },
        }
    }
}

/// The fusion task.
pub struct LaneFusion {
    detection_in: Reader<LaneDetection>,
    imu_in: Reader<ImuSample>,
    state_in: Reader<VehicleState>,
    estimate_out: Writer<LaneEstimate>,
    filter: LaneFilter,
    /// Speed held from the last fresh wheel-speed sample.
    speed_mps: f64,
    jobs: u64,
    corrections: u64,
    dead_reckoning_jobs: u64,
    publish_errors: u64,
}

/// Builds the `lane_fusion` task from its manifest parameters.
pub fn build(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    let p = FusionParams {
        offset_gain: b.get(&OFFSET_GAIN)?,
        heading_gain: b.get(&HEADING_GAIN)?,
        curvature_gain: b.get(&CURVATURE_GAIN)?,
        curvature_rate_gain: b.get(&CURVATURE_RATE_GAIN)?,
        camera_timeout_ns: b.get(&CAMERA_TIMEOUT_MS)?,
        motion_timeout_ns: b.get(&MOTION_TIMEOUT_MS)?,
    };
    Ok(Box::new(LaneFusion {
        detection_in: b.reader(TOPIC_LANE_DETECTION)?,
        imu_in: b.reader(TOPIC_IMU)?,
        state_in: b.reader(TOPIC_VEHICLE_STATE)?,
        estimate_out: b.writer(TOPIC_LANE_ESTIMATE)?,
        filter: LaneFilter::new(p),
        speed_mps: 0.0,
        jobs: 0,
        corrections: 0,
        dead_reckoning_jobs: 0,
        publish_errors: 0,
    }))
}

impl Task for LaneFusion {
    fn step(&mut self, ctx: &StepContext) {
        let now_ns = ctx.release_ns();
        let timeout_ns = self.filter.params.motion_timeout_ns;
        if let Some(s) = self
            .state_in
            .read(ctx)
            .filter(|s| fresh(now_ns, s.time_ns, timeout_ns))
        {
            self.speed_mps = s.speed_mps;
        }
        let imu = self
            .imu_in
            .read(ctx)
            .filter(|i| fresh(now_ns, i.time_ns, timeout_ns))
            .map(|i| *i);
        let motion = Motion {
            time_ns: now_ns,
            speed_mps: self.speed_mps,
            yaw_angle_rad: imu.map(|i| i.yaw_angle_rad),
            yaw_rate_radps: imu.map_or(0.0, |i| i.yaw_rate_radps),
        };
        self.filter.predict(motion);
        let last_camera_ns = self.filter.camera_time_ns;
        if let Some(detection) = self.detection_in.read(ctx).map(|d| *d) {
            // Each detection once: the reader returns the newest until a newer arrives.
            if detection.valid == TRUE && detection.time_ns > last_camera_ns {
                self.filter.correct(&detection, &motion);
                self.corrections += 1;
            }
        }
        let estimate = self.filter.estimate(now_ns);
        self.jobs += 1;
        if estimate.dead_reckoning == TRUE {
            self.dead_reckoning_jobs += 1;
        }
        if self.estimate_out.publish(ctx, |e| *e = estimate).is_err() {
            self.publish_errors += 1;
        }
    }

    fn finish(&mut self, report: &mut TaskReport) {
        report
            .outcome
            .push(("camera_corrections".into(), self.corrections.to_string()));
        report.outcome.push((
            "dead_reckoning_jobs".into(),
            format!("{}/{}", self.dead_reckoning_jobs, self.jobs),
        ));
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

    const MS: u64 = 1_000_000;

    fn detection(time_ns: u64, s: &LaneState) -> LaneDetection {
        LaneDetection {
            time_ns,
            lateral_offset_m: s.offset_m,
            heading_error_rad: s.heading_rad,
            curvature_per_m: s.curvature_per_m,
            curvature_rate_per_m2: s.curvature_rate_per_m2,
            points: 100,
            valid: TRUE,
        }
    }

    /// A vehicle drifting across a curved lane at constant yaw rate; the filter sees the
    /// truth through noiseless IMU increments and a camera 6 ms late, every 10 ms.
    #[test]
    fn tracks_a_drifting_vehicle_in_a_bend_and_dead_reckons_without_camera() {
        let v = 25.0;
        let yaw_rate = v / 300.0 + 0.01; // turning a little more than the lane
        let truth_at = |t_ns: u64| {
            let lane = LaneState {
                offset_m: 0.1,
                heading_rad: 0.0,
                curvature_per_m: 1.0 / 300.0,
                curvature_rate_per_m2: 0.0,
            };
            lane.propagated(v * ns_to_s(t_ns), yaw_rate * ns_to_s(t_ns))
        };
        let mut f = LaneFilter::new(FusionParams::default());
        let motion = |t_ns: u64| Motion {
            time_ns: t_ns,
            speed_mps: v,
            yaw_angle_rad: Some(yaw_rate * ns_to_s(t_ns)),
            yaw_rate_radps: yaw_rate,
        };
        // Jobs from 100 ms on, so the first detection's capture instant is after the start.
        let base = 100 * MS;
        for k in 1..=200u64 {
            let now = base + k * 5 * MS;
            f.predict(motion(now));
            if k % 2 == 1 {
                let capture = now - 6 * MS;
                f.correct(&detection(capture, &truth_at(capture)), &motion(now));
            }
            let e = f.estimate(now);
            let t = truth_at(now);
            assert_eq!(e.valid, TRUE);
            assert_eq!(e.dead_reckoning, FALSE);
            assert!(
                (e.lateral_offset_m - t.offset_m).abs() < 1e-3,
                "k {k}: {e:?} {t:?}"
            );
            assert!((e.heading_error_rad - t.heading_rad).abs() < 1e-4);
        }
        // The camera goes away: one second of dead reckoning on exact IMU increments keeps
        // the estimate on the truth, and says it is dead reckoning.
        for k in 201..=400u64 {
            let now = base + k * 5 * MS;
            f.predict(motion(now));
        }
        let now = base + 400 * 5 * MS;
        let e = f.estimate(now);
        assert_eq!(e.dead_reckoning, TRUE);
        assert!(
            (e.lateral_offset_m - truth_at(now).offset_m).abs() < 1e-2,
            "{e:?}"
        );
    }

    #[test]
    fn a_first_detection_initialises_and_noise_is_smoothed() {
        let mut f = LaneFilter::new(FusionParams::default());
        assert_eq!(f.estimate(0).valid, FALSE);
        let still = |t: u64| Motion {
            time_ns: t,
            speed_mps: 0.0,
            yaw_angle_rad: Some(0.0),
            yaw_rate_radps: 0.0,
        };
        f.predict(still(0));
        let lane = LaneState {
            offset_m: 0.5,
            ..LaneState::default()
        };
        f.correct(&detection(0, &lane), &still(0));
        assert_eq!(f.estimate(0).lateral_offset_m, 0.5);
        // Alternating +-4 cm measurement errors: the estimate's error stays below them.
        for k in 1..100u64 {
            f.predict(still(k * MS));
            let err = if k % 2 == 0 { 0.04 } else { -0.04 };
            let noisy = LaneState {
                offset_m: 0.5 + err,
                ..lane
            };
            f.correct(&detection(k * MS, &noisy), &still(k * MS));
            assert!((f.estimate(k * MS).lateral_offset_m - 0.5).abs() < 0.04);
        }
    }
}

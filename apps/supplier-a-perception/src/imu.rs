//! The `imu` task: a simulated inertial measurement unit.
//!
//! Owns: the IMU's measurement model. Every job it measures the vehicle's yaw rate and
//! lateral acceleration from the truth, with a constant yaw-rate bias and seeded noise, and
//! integrates the measured yaw rate over its period into the yaw angle it reports (the
//! delta-angle output real IMUs have, so slower readers get the heading change between
//! their jobs from two samples). The generator draws the same number of values every job,
//! so the noise depends on the job count only. Its step never allocates, locks or does I/O.

use lane_msgs::{ImuSample, VehicleTruth, TOPIC_IMU, TOPIC_VEHICLE_TRUTH};
use takt::task::{
    Declare, FloatParam, Reader, SeedParam, StepContext, Task, TaskBuildError, TaskBuilder,
    TaskReport, Writer,
};

use crate::params;
use takt::rng::SplitMix64;

/// The IMU's errors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImuParams {
    /// Constant offset of the measured yaw rate (a real gyro's turn-on bias).
    pub yaw_rate_bias_radps: f64,
    pub yaw_rate_std_radps: f64,
    pub lateral_accel_std_mps2: f64,
}

pub const YAW_RATE_BIAS_RADPS: FloatParam =
    FloatParam::new("yaw_rate_bias_radps", 0.002, -0.1, 0.1);
pub const YAW_RATE_STD_RADPS: FloatParam = FloatParam::new("yaw_rate_std_radps", 0.003, 0.0, 0.1);
pub const LATERAL_ACCEL_STD_MPS2: FloatParam =
    FloatParam::new("lateral_accel_std_mps2", 0.05, 0.0, 5.0);
pub const SEED: SeedParam = SeedParam::new("seed", 11);

/// Every parameter this task reads, as its catalog declares them.
pub const PARAMS: &[&dyn Declare] = &[
    &YAW_RATE_BIAS_RADPS,
    &YAW_RATE_STD_RADPS,
    &LATERAL_ACCEL_STD_MPS2,
    &SEED,
];

impl Default for ImuParams {
    fn default() -> Self {
        ImuParams {
            yaw_rate_bias_radps: YAW_RATE_BIAS_RADPS.default,
            yaw_rate_std_radps: YAW_RATE_STD_RADPS.default,
            lateral_accel_std_mps2: LATERAL_ACCEL_STD_MPS2.default,
        }
    }
}

/// The measurement model: generator and the integrated yaw angle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImuModel {
    pub params: ImuParams,
    rng: SplitMix64,
    yaw_angle_rad: f64,
}

impl ImuModel {
    pub fn new(params: ImuParams, seed: u64) -> Self {
        ImuModel {
            params,
            rng: SplitMix64::new(seed),
            yaw_angle_rad: 0.0,
        }
    }

    /// One sample of `truth`, integrating the measured yaw rate over `dt_s`. Always draws
    /// two values.
    pub fn measure(&mut self, truth: &VehicleTruth, dt_s: f64) -> ImuSample {
        let p = self.params;
        let yaw_rate_radps = truth.yaw_rate_radps
            + p.yaw_rate_bias_radps
            + self.rng.next_gaussian() * p.yaw_rate_std_radps;
        let lateral_accel_mps2 =
            truth.lateral_accel_mps2 + self.rng.next_gaussian() * p.lateral_accel_std_mps2;
        self.yaw_angle_rad += yaw_rate_radps * dt_s;
        ImuSample {
            time_ns: truth.time_ns,
            yaw_rate_radps,
            lateral_accel_mps2,
            yaw_angle_rad: self.yaw_angle_rad,
        }
    }
}

/// The IMU task.
pub struct Imu {
    truth_in: Reader<VehicleTruth>,
    sample_out: Writer<ImuSample>,
    model: ImuModel,
    dt_s: f64,
    jobs: u64,
    no_truth_jobs: u64,
    publish_errors: u64,
}

/// Builds the `imu` task from its manifest parameters.
pub fn build(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    let p = ImuParams {
        yaw_rate_bias_radps: b.get(&YAW_RATE_BIAS_RADPS)?,
        yaw_rate_std_radps: b.get(&YAW_RATE_STD_RADPS)?,
        lateral_accel_std_mps2: b.get(&LATERAL_ACCEL_STD_MPS2)?,
    };
    Ok(Box::new(Imu {
        truth_in: b.reader(TOPIC_VEHICLE_TRUTH)?,
        sample_out: b.writer(TOPIC_IMU)?,
        model: ImuModel::new(p, b.get(&SEED)?),
        dt_s: params::period_s(b),
        jobs: 0,
        no_truth_jobs: 0,
        publish_errors: 0,
    }))
}

impl Task for Imu {
    fn step(&mut self, ctx: &StepContext) {
        self.jobs += 1;
        // Before the world's first truth there is nothing to measure, and nothing is sent:
        // readers see no sample rather than an invented one.
        let Some(truth) = self.truth_in.read(ctx).map(|t| *t) else {
            self.no_truth_jobs += 1;
            return;
        };
        let sample = self.model.measure(&truth, self.dt_s);
        if self.sample_out.publish(ctx, |s| *s = sample).is_err() {
            self.publish_errors += 1;
        }
    }

    fn finish(&mut self, report: &mut TaskReport) {
        report.outcome.push((
            "samples".into(),
            (self.jobs - self.no_truth_jobs).to_string(),
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

    fn truth(yaw_rate_radps: f64) -> VehicleTruth {
        VehicleTruth {
            time_ns: 7,
            speed_mps: 25.0,
            yaw_rate_radps,
            lateral_accel_mps2: 25.0 * yaw_rate_radps,
            lane_width_m: 3.5,
            ..VehicleTruth::default()
        }
    }

    #[test]
    fn integrated_angle_carries_rate_and_bias_and_is_reproducible() {
        let p = ImuParams::default();
        let mut a = ImuModel::new(p, 5);
        let mut b = ImuModel::new(p, 5);
        let mut last = ImuSample::default();
        for _ in 0..10_000 {
            last = a.measure(&truth(0.1), 0.001);
            assert_eq!(last, b.measure(&truth(0.1), 0.001));
            assert!((last.yaw_rate_radps - 0.1 - p.yaw_rate_bias_radps).abs() <= 3.5 * 0.003);
        }
        // 10 s at 0.1 rad/s plus the bias; the noise averages out of the integral.
        let expected = (0.1 + p.yaw_rate_bias_radps) * 10.0;
        assert!(
            (last.yaw_angle_rad - expected).abs() < 1e-3,
            "{}",
            last.yaw_angle_rad
        );
        assert_eq!(last.time_ns, 7);
    }

    #[test]
    fn other_seed_other_noise() {
        let mut a = ImuModel::new(ImuParams::default(), 1);
        let mut b = ImuModel::new(ImuParams::default(), 2);
        assert_ne!(a.measure(&truth(0.0), 0.001), b.measure(&truth(0.0), 0.001));
    }
}

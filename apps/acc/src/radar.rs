//! The `radar` task: a simulated long-range radar.
//!
//! Owns: the radar's measurement model. It measures the range and range rate to the lead
//! vehicle from ground truth with seeded Gaussian-like noise, reports nothing beyond its
//! maximum range, and drops out now and then with a seeded probability (which exercises
//! perception's camera fallback). The generator lives in the task, seeded from the `seed`
//! parameter, and draws the same number of values every job so the noise sequence depends on
//! the job count only. It must never read the ego's own state beyond what a radar sees, and
//! its step never allocates, locks or does I/O.

use takt::task::{
    Declare, FloatParam, Reader, SeedParam, StepContext, Task, TaskBuildError, TaskBuilder,
    TaskReport, Writer,
};

use crate::messages::{GroundTruth, RadarTrack, FALSE, TOPIC_RADAR_TRACK, TOPIC_TRUTH, TRUE};
use takt::rng::SplitMix64;

/// The radar's noise and coverage.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RadarParams {
    pub range_std_m: f64,
    pub rate_std_mps: f64,
    pub max_range_m: f64,
    /// Probability that a cycle reports no detection although the lead is in range.
    pub dropout: f64,
}

pub const RANGE_STD_M: FloatParam = FloatParam::new("range_std_m", 0.1, 0.0, 10.0);
pub const RATE_STD_MPS: FloatParam = FloatParam::new("rate_std_mps", 0.05, 0.0, 10.0);
pub const MAX_RANGE_M: FloatParam = FloatParam::new("max_range_m", 150.0, 1.0, 1000.0);
pub const DROPOUT: FloatParam = FloatParam::new("dropout", 0.02, 0.0, 1.0);
pub const SEED: SeedParam = SeedParam::new("seed", 1);

/// Every parameter this task reads, as its catalog declares them.
pub const PARAMS: &[&dyn Declare] = &[&RANGE_STD_M, &RATE_STD_MPS, &MAX_RANGE_M, &DROPOUT, &SEED];

impl Default for RadarParams {
    fn default() -> Self {
        RadarParams {
            range_std_m: RANGE_STD_M.default,
            rate_std_mps: RATE_STD_MPS.default,
            max_range_m: MAX_RANGE_M.default,
            dropout: DROPOUT.default,
        }
    }
}

/// The measurement model with its generator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RadarModel {
    pub params: RadarParams,
    rng: SplitMix64,
}

impl RadarModel {
    pub fn new(params: RadarParams, seed: u64) -> Self {
        RadarModel {
            params,
            rng: SplitMix64::new(seed),
        }
    }

    /// One measurement of `truth`. Always draws three values, detected or not.
    pub fn measure(&mut self, truth: &GroundTruth) -> RadarTrack {
        let dropout_draw = self.rng.next_unit();
        let range_noise = self.rng.next_gaussian() * self.params.range_std_m;
        let rate_noise = self.rng.next_gaussian() * self.params.rate_std_mps;
        let detected = truth.gap_m > 0.0
            && truth.gap_m <= self.params.max_range_m
            && dropout_draw >= self.params.dropout;
        if detected {
            RadarTrack {
                time_ns: truth.time_ns,
                range_m: (truth.gap_m + range_noise).max(0.0),
                range_rate_mps: truth.lead_speed_mps - truth.ego_speed_mps + rate_noise,
                valid: TRUE,
                _pad: 0,
            }
        } else {
            RadarTrack {
                time_ns: truth.time_ns,
                range_m: 0.0,
                range_rate_mps: 0.0,
                valid: FALSE,
                _pad: 0,
            }
        }
    }
}

/// The radar task.
pub struct Radar {
    truth_in: Reader<GroundTruth>,
    track_out: Writer<RadarTrack>,
    model: RadarModel,
    jobs: u64,
    no_detection_jobs: u64,
    publish_errors: u64,
}

/// Builds the `radar` task from its manifest parameters.
pub fn build(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    let p = RadarParams {
        range_std_m: b.get(&RANGE_STD_M)?,
        rate_std_mps: b.get(&RATE_STD_MPS)?,
        max_range_m: b.get(&MAX_RANGE_M)?,
        dropout: b.get(&DROPOUT)?,
    };
    Ok(Box::new(Radar {
        truth_in: b.reader(TOPIC_TRUTH)?,
        track_out: b.writer(TOPIC_RADAR_TRACK)?,
        model: RadarModel::new(p, b.get(&SEED)?),
        jobs: 0,
        no_detection_jobs: 0,
        publish_errors: 0,
    }))
}

impl Task for Radar {
    fn step(&mut self, ctx: &StepContext) {
        let now_ns = ctx.release_ns();
        let track = match self.truth_in.read(ctx) {
            Some(truth) => self.model.measure(&truth),
            None => RadarTrack {
                time_ns: now_ns,
                range_m: 0.0,
                range_rate_mps: 0.0,
                valid: FALSE,
                _pad: 0,
            },
        };
        self.jobs += 1;
        if track.valid != TRUE {
            self.no_detection_jobs += 1;
        }
        if self.track_out.publish(ctx, |t| *t = track).is_err() {
            self.publish_errors += 1;
        }
    }

    fn finish(&mut self, report: &mut TaskReport) {
        report.outcome.push((
            "no_detection_jobs".into(),
            format!("{}/{}", self.no_detection_jobs, self.jobs),
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

    fn truth(gap_m: f64) -> GroundTruth {
        GroundTruth {
            time_ns: 5,
            lead_position_m: 100.0 + gap_m,
            lead_speed_mps: 18.0,
            lead_accel_mps2: 0.0,
            ego_position_m: 100.0,
            ego_speed_mps: 20.0,
            ego_accel_mps2: 0.0,
            gap_m,
        }
    }

    #[test]
    fn noisy_but_unbiased_and_reproducible() {
        let p = RadarParams {
            dropout: 0.0,
            ..RadarParams::default()
        };
        let mut a = RadarModel::new(p, 3);
        let mut b = RadarModel::new(p, 3);
        let n = 20_000;
        let mut sum_err = 0.0;
        for _ in 0..n {
            let ta = a.measure(&truth(40.0));
            assert_eq!(ta, b.measure(&truth(40.0)));
            assert_eq!(ta.valid, TRUE);
            assert!((ta.range_m - 40.0).abs() <= 3.5 * p.range_std_m);
            sum_err += ta.range_m - 40.0;
            assert!((ta.range_rate_mps - -2.0).abs() <= 3.5 * p.rate_std_mps);
        }
        assert!((sum_err / n as f64).abs() < 0.01);
    }

    #[test]
    fn out_of_range_and_dropouts_are_not_detected() {
        let mut m = RadarModel::new(RadarParams::default(), 9);
        assert_eq!(m.measure(&truth(151.0)).valid, FALSE);
        assert_eq!(m.measure(&truth(-0.5)).valid, FALSE);
        let dropouts = (0..10_000)
            .filter(|_| m.measure(&truth(30.0)).valid == FALSE)
            .count();
        // 2% of 10,000 with a generous band: the dropout path is live but rare.
        assert!((100..=300).contains(&dropouts), "{dropouts}");
    }
}

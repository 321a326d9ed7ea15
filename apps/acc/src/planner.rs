//! The `planner` task: a constant-time-gap policy with a set speed.
//!
//! Owns: the choice of desired acceleration. The policy keeps a gap of
//! `standstill_m + time_gap_s * v_ego` behind the lead (gap and closing-speed feedback) and
//! never drives faster than the set speed; the smaller of the two requests wins, so the car
//! follows when a slower lead is ahead and cruises otherwise. It must never shape the
//! request over time (jerk limits belong to the actuator) nor track it (the controller
//! does), and its step never allocates, locks or does I/O.

use takt::task::{Reader, StepContext, Task, TaskBuildError, TaskBuilder, TaskReport, Writer};

use crate::messages::{
    AccelRequest, EgoState, FusedObject, FALSE, TOPIC_ACCEL_REQUEST, TOPIC_EGO_STATE,
    TOPIC_FUSED_OBJECT, TRUE,
};
use crate::params;

/// The time-gap policy's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeGapPolicy {
    /// Target time gap to the lead at speed.
    pub time_gap_s: f64,
    /// Gap kept at standstill.
    pub standstill_m: f64,
    /// Speed the driver set: the policy never asks for more.
    pub set_speed_mps: f64,
    /// Acceleration per metre of gap error. With `rate_gain_per_s` it places the poles of
    /// the gap loop: `s^2 + (time_gap_s * gap_gain + rate_gain) s + gap_gain`.
    pub gap_gain_per_s2: f64,
    /// Acceleration per m/s of range rate (closing speed).
    pub rate_gain_per_s: f64,
    /// Acceleration per m/s below the set speed.
    pub speed_gain_per_s: f64,
    /// Comfort/safety range of the request.
    pub accel_min_mps2: f64,
    pub accel_max_mps2: f64,
}

impl Default for TimeGapPolicy {
    fn default() -> Self {
        TimeGapPolicy {
            time_gap_s: 1.8,
            standstill_m: 2.0,
            set_speed_mps: 25.0,
            gap_gain_per_s2: 1.0,
            rate_gain_per_s: 0.6,
            speed_gain_per_s: 0.5,
            accel_min_mps2: -7.0,
            accel_max_mps2: 2.0,
        }
    }
}

/// What the planner knows about the vehicle ahead.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Target {
    pub range_m: f64,
    /// Lead speed minus ego speed.
    pub range_rate_mps: f64,
}

/// The policy's decision.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    pub accel_mps2: f64,
    pub desired_gap_m: f64,
    /// True if the gap request (not the set speed) was the smaller one.
    pub gap_control: bool,
}

impl TimeGapPolicy {
    /// The gap the policy aims at when the ego drives at `ego_speed_mps`.
    pub fn desired_gap_m(&self, ego_speed_mps: f64) -> f64 {
        self.standstill_m + self.time_gap_s * ego_speed_mps
    }

    pub fn decide(&self, ego_speed_mps: f64, target: Option<Target>) -> Decision {
        let desired_gap_m = self.desired_gap_m(ego_speed_mps);
        let speed_request = self.speed_gain_per_s * (self.set_speed_mps - ego_speed_mps);
        let (request, gap_control) = match target {
            Some(t) => {
                let gap_request = self.gap_gain_per_s2 * (t.range_m - desired_gap_m)
                    + self.rate_gain_per_s * t.range_rate_mps;
                if gap_request < speed_request {
                    (gap_request, true)
                } else {
                    (speed_request, false)
                }
            }
            None => (speed_request, false),
        };
        Decision {
            accel_mps2: request.clamp(self.accel_min_mps2, self.accel_max_mps2),
            desired_gap_m,
            gap_control,
        }
    }
}

/// The planner task: reads the fused object and the ego speed, publishes the request.
pub struct Planner {
    object_in: Reader<FusedObject>,
    ego_in: Reader<EgoState>,
    request_out: Writer<AccelRequest>,
    policy: TimeGapPolicy,
    object_timeout_ns: u64,
    ego_timeout_ns: u64,
    /// Requested while the ego speed is unknown: gentle braking.
    blind_mps2: f64,
    jobs: u64,
    gap_control_jobs: u64,
    blind_jobs: u64,
    publish_errors: u64,
}

/// Builds the `planner` task from its manifest parameters.
pub fn build(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    let d = TimeGapPolicy::default();
    let accel_min_mps2 = params::f64_in(b, "accel_min_mps2", d.accel_min_mps2, -12.0, -0.5)?;
    let policy = TimeGapPolicy {
        time_gap_s: params::f64_in(b, "time_gap_s", d.time_gap_s, 0.5, 5.0)?,
        standstill_m: params::f64_in(b, "standstill_m", d.standstill_m, 0.5, 20.0)?,
        set_speed_mps: params::f64_in(b, "set_speed_mps", d.set_speed_mps, 0.0, 70.0)?,
        gap_gain_per_s2: params::f64_in(b, "gap_gain_per_s2", d.gap_gain_per_s2, 0.01, 10.0)?,
        rate_gain_per_s: params::f64_in(b, "rate_gain_per_s", d.rate_gain_per_s, 0.0, 10.0)?,
        speed_gain_per_s: params::f64_in(b, "speed_gain_per_s", d.speed_gain_per_s, 0.01, 10.0)?,
        accel_min_mps2,
        accel_max_mps2: params::f64_in(b, "accel_max_mps2", d.accel_max_mps2, 0.1, 6.0)?,
    };
    Ok(Box::new(Planner {
        object_in: b.reader(TOPIC_FUSED_OBJECT)?,
        ego_in: b.reader(TOPIC_EGO_STATE)?,
        request_out: b.writer(TOPIC_ACCEL_REQUEST)?,
        policy,
        object_timeout_ns: params::ms_in_ns(b, "object_timeout_ms", 60.0, 1.0, 10_000.0)?,
        ego_timeout_ns: params::ms_in_ns(b, "ego_timeout_ms", 30.0, 1.0, 10_000.0)?,
        blind_mps2: params::f64_in(b, "blind_mps2", -2.0, accel_min_mps2, 0.0)?,
        jobs: 0,
        gap_control_jobs: 0,
        blind_jobs: 0,
        publish_errors: 0,
    }))
}

/// A sample stamped at `time_ns` is fresh at `now_ns` if it is at most `timeout_ns` old.
pub fn fresh(now_ns: u64, time_ns: u64, timeout_ns: u64) -> bool {
    now_ns.saturating_sub(time_ns) <= timeout_ns
}

impl Task for Planner {
    fn step(&mut self, ctx: &StepContext) {
        let now_ns = ctx.release_ns();
        let (object_timeout_ns, ego_timeout_ns) = (self.object_timeout_ns, self.ego_timeout_ns);
        let target = self
            .object_in
            .read(ctx)
            .filter(|o| o.valid == TRUE && fresh(now_ns, o.time_ns, object_timeout_ns))
            .map(|o| Target {
                range_m: o.range_m,
                range_rate_mps: o.range_rate_mps,
            });
        let ego_speed_mps = self
            .ego_in
            .read(ctx)
            .filter(|e| fresh(now_ns, e.time_ns, ego_timeout_ns))
            .map(|e| e.speed_mps);
        let policy = self.policy;
        let (accel_mps2, desired_gap_m, gap_control) = match ego_speed_mps {
            Some(v) => {
                let d = policy.decide(v, target);
                (d.accel_mps2, d.desired_gap_m, d.gap_control)
            }
            None => {
                // Without its own speed the policy cannot compute a gap target: brake
                // gently until the vehicle bus is back.
                self.blind_jobs += 1;
                (self.blind_mps2, policy.standstill_m, false)
            }
        };
        self.jobs += 1;
        if gap_control {
            self.gap_control_jobs += 1;
        }
        let published = self.request_out.publish(ctx, |r| {
            *r = AccelRequest {
                time_ns: now_ns,
                accel_mps2,
                desired_gap_m,
                time_gap_s: policy.time_gap_s,
                standstill_m: policy.standstill_m,
                gap_control: if gap_control { TRUE } else { FALSE },
                _pad: 0,
            };
        });
        if published.is_err() {
            self.publish_errors += 1;
        }
    }

    fn finish(&mut self, report: &mut TaskReport) {
        report.outcome.push((
            "gap_control_jobs".into(),
            format!("{}/{}", self.gap_control_jobs, self.jobs),
        ));
        if self.blind_jobs > 0 {
            report
                .outcome
                .push(("ego_state_lost_jobs".into(), self.blind_jobs.to_string()));
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

    #[test]
    fn follows_a_slower_lead_and_cruises_without_one() {
        let p = TimeGapPolicy::default();
        let free = p.decide(20.0, None);
        assert!(!free.gap_control);
        assert!(free.accel_mps2 > 0.0, "below set speed: speed up");
        // At the desired gap with no closing speed, the gap request is zero.
        let at_gap = p.decide(
            20.0,
            Some(Target {
                range_m: p.desired_gap_m(20.0),
                range_rate_mps: 0.0,
            }),
        );
        assert!(at_gap.gap_control);
        assert_eq!(at_gap.accel_mps2, 0.0);
        // Too close and closing in: brake, within the limit.
        let close = p.decide(
            20.0,
            Some(Target {
                range_m: 10.0,
                range_rate_mps: -8.0,
            }),
        );
        assert!(close.gap_control);
        assert_eq!(close.accel_mps2, p.accel_min_mps2);
        // A far lead does not pull the car above its set speed.
        let far = p.decide(
            p.set_speed_mps,
            Some(Target {
                range_m: 200.0,
                range_rate_mps: 5.0,
            }),
        );
        assert!(!far.gap_control);
        assert_eq!(far.accel_mps2, 0.0);
    }

    #[test]
    fn freshness_is_inclusive_of_the_timeout() {
        assert!(fresh(100, 70, 30));
        assert!(!fresh(101, 70, 30));
        // A sample stamped after the reader's release (cannot happen under LET) is fresh.
        assert!(fresh(50, 70, 30));
    }
}

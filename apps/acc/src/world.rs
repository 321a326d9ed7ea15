//! The `world` task: the simulated road, and the judge of the run.
//!
//! Owns: the ground truth. Each job advances the lead and ego vehicles to the job's logical
//! release with the step length of its period (zero-order hold on the actuator's applied
//! command, as a real actuator holds its last output), publishes the truth and the ego's bus
//! signals, and then takes the newest applied command for the next step. It also keeps the
//! outcome of the run: the minimum gap, any collision, and whether the gap converged to the
//! planner's own time-gap target during the steady phases of the lead's profile; `finish`
//! reports these as `outcome:` lines.
//!
//! Time is logical only: the simulated instant is the job's release, never a clock reading,
//! so a run's trajectory is the same in real and simulated time. It must never look at other
//! tasks' internals: it sees the rest of the system only through its ports. The step does not
//! allocate, lock or do I/O.

use takt::task::{
    Declare, FloatParam, MsParam, Reader, StepContext, Task, TaskBuildError, TaskBuilder,
    TaskReport, Writer,
};

use crate::messages::{
    AccelRequest, AppliedCommand, EgoState, GroundTruth, TOPIC_ACCEL_REQUEST,
    TOPIC_APPLIED_COMMAND, TOPIC_EGO_STATE, TOPIC_TRUTH,
};
use crate::params::ns_to_s;
use crate::planner::fresh;
use crate::vehicle::{self, Ego, Lead, LeadProfile, PhaseKind, ProfileSpec, VehicleParams};

/// The initial situation and the physics of a simulated run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WorldConfig {
    pub vehicle: VehicleParams,
    pub profile: ProfileSpec,
    pub lead_speed_mps: f64,
    pub ego_speed_mps: f64,
    pub initial_gap_m: f64,
    /// Step length: the world task's period.
    pub step_ns: u64,
}

pub const LEAD_SPEED_MPS: FloatParam = FloatParam::new("lead_speed_mps", 20.0, 0.0, 70.0);
pub const EGO_SPEED_MPS: FloatParam = FloatParam::new("ego_speed_mps", 20.0, 0.0, 70.0);
pub const INITIAL_GAP_M: FloatParam = FloatParam::new("initial_gap_m", 44.0, 0.5, 1000.0);
pub const CONVERGE_TOLERANCE: FloatParam = FloatParam::new("converge_tolerance", 0.10, 0.001, 1.0);
pub const CONVERGE_WINDOW_MS: MsParam = MsParam::new("converge_window_ms", 1000.0, 10.0, 600_000.0);
pub const REQUEST_TIMEOUT_MS: MsParam = MsParam::new("request_timeout_ms", 60.0, 1.0, 10_000.0);

/// Every parameter this task reads, as its catalog declares them (the ego vehicle's and the
/// lead profile's are declared next to their structs in [`crate::vehicle`]).
pub const PARAMS: &[&dyn Declare] = &[
    &vehicle::EGO_ACCEL_MIN_MPS2,
    &vehicle::EGO_LAG_S,
    &vehicle::EGO_ACCEL_MAX_MPS2,
    &vehicle::EGO_ROLLING_MPS2,
    &vehicle::EGO_AERO_PER_M,
    &vehicle::CRUISE_S,
    &vehicle::BRAKE_HARD_S,
    &vehicle::BRAKE_HARD_MPS2,
    &vehicle::ACCELERATE_S,
    &vehicle::ACCELERATE_MPS2,
    &vehicle::STEADY_S,
    &vehicle::STOP_S,
    &vehicle::STOP_MPS2,
    &vehicle::STANDSTILL_S,
    &vehicle::GO_S,
    &vehicle::GO_MPS2,
    &vehicle::PROFILE_JITTER,
    &vehicle::PROFILE_SEED,
    &LEAD_SPEED_MPS,
    &EGO_SPEED_MPS,
    &INITIAL_GAP_M,
    &CONVERGE_TOLERANCE,
    &CONVERGE_WINDOW_MS,
    &REQUEST_TIMEOUT_MS,
];

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            vehicle: VehicleParams::default(),
            profile: ProfileSpec::default(),
            lead_speed_mps: LEAD_SPEED_MPS.default,
            ego_speed_mps: EGO_SPEED_MPS.default,
            initial_gap_m: INITIAL_GAP_M.default,
            step_ns: 10_000_000,
        }
    }
}

/// The longest stretch of missed releases (skipped jobs) the world integrates through.
/// Beyond it, the state jumps in time instead: one job must stay bounded in cost.
pub const MAX_CATCH_UP_STEPS: u64 = 1000;

/// Both vehicles and the lead's profile: the pure simulation the world task wraps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WorldSim {
    pub config: WorldConfig,
    pub profile: LeadProfile,
    pub lead: Lead,
    pub ego: Ego,
    /// The instant the state describes.
    pub time_ns: u64,
}

impl WorldSim {
    /// The initial state at `time_ns`: both vehicles cruising, the lead `initial_gap_m` ahead.
    pub fn new(config: WorldConfig, time_ns: u64) -> Self {
        WorldSim {
            config,
            profile: LeadProfile::new(&config.profile),
            lead: Lead {
                position_m: config.initial_gap_m,
                speed_mps: config.lead_speed_mps,
                accel_mps2: 0.0,
            },
            ego: Ego::cruising(&config.vehicle, 0.0, config.ego_speed_mps),
            time_ns,
        }
    }

    /// The command that keeps the ego cruising at its initial speed: what the drive train
    /// holds before the first applied command arrives.
    pub fn cruise_command_mps2(&self) -> f64 {
        self.config.vehicle.drag_mps2(self.config.ego_speed_mps)
    }

    /// Advances to `t_ns` in whole steps with `command_mps2` held. Never goes back in time;
    /// integrates at most [`MAX_CATCH_UP_STEPS`] steps and jumps the rest.
    pub fn advance_to(&mut self, t_ns: u64, command_mps2: f64) {
        let step_ns = self.config.step_ns;
        let dt_s = ns_to_s(step_ns);
        let mut steps = 0;
        while self.time_ns + step_ns <= t_ns && steps < MAX_CATCH_UP_STEPS {
            // The lead's acceleration over [t, t + dt) is the profile's at t.
            let lead_accel_mps2 = self.profile.accel_mps2(self.time_ns);
            self.lead.step(lead_accel_mps2, dt_s);
            self.ego.step(&self.config.vehicle, command_mps2, dt_s);
            self.time_ns += step_ns;
            steps += 1;
        }
        self.time_ns = self.time_ns.max(t_ns);
    }

    pub fn truth(&self) -> GroundTruth {
        GroundTruth {
            time_ns: self.time_ns,
            lead_position_m: self.lead.position_m,
            lead_speed_mps: self.lead.speed_mps,
            lead_accel_mps2: self.lead.accel_mps2,
            ego_position_m: self.ego.position_m,
            ego_speed_mps: self.ego.speed_mps,
            ego_accel_mps2: self.ego.accel_mps2,
            gap_m: self.lead.position_m - self.ego.position_m,
        }
    }
}

/// The planner's policy as the world judges against it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GapPolicy {
    pub time_gap_s: f64,
    pub standstill_m: f64,
}

impl GapPolicy {
    pub fn desired_gap_m(&self, ego_speed_mps: f64) -> f64 {
        self.standstill_m + self.time_gap_s * ego_speed_mps
    }
}

/// How convergence is judged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvergenceRule {
    /// Allowed relative gap error: `|gap - desired| <= tolerance * desired`.
    pub tolerance: f64,
    /// The error must stay within tolerance for the last `window_ns` of a steady phase.
    pub window_ns: u64,
    /// Phases in which the lead is slower than this (standing) are not judged: the time
    /// gap is meaningless at standstill.
    pub min_lead_speed_mps: f64,
}

impl Default for ConvergenceRule {
    fn default() -> Self {
        ConvergenceRule {
            tolerance: CONVERGE_TOLERANCE.default,
            window_ns: CONVERGE_WINDOW_MS.default_ns(),
            min_lead_speed_mps: 1.0,
        }
    }
}

/// The outcome of a run so far: safety figures and per-phase convergence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutcomeTracker {
    rule: ConvergenceRule,
    pub min_gap_m: f64,
    pub collision_at_ns: Option<u64>,
    pub last_truth: Option<GroundTruth>,
    pub last_policy: Option<GapPolicy>,
    /// The phase being observed, its first observed instant, and whether it can still be
    /// judged (a steady phase in which the lead kept moving).
    phase: usize,
    phase_start_ns: u64,
    phase_judgeable: bool,
    /// Since when the gap has been within tolerance without interruption in this phase.
    within_since_ns: Option<u64>,
    /// Whether the latest sample came with a planner policy.
    policy_at_last_sample: bool,
    pub phases_judged: u32,
    pub phases_converged: u32,
    /// Verdict on the latest judged phase: `(phase kind, converged)`.
    pub last_verdict: Option<(PhaseKind, bool)>,
    /// Relative gap error at the latest sample of the current phase.
    last_error: Option<f64>,
    /// Largest relative gap error (percent) at the end of a judged phase.
    pub max_end_gap_error_pct: f64,
}

impl OutcomeTracker {
    pub fn new(rule: ConvergenceRule) -> Self {
        OutcomeTracker {
            rule,
            min_gap_m: f64::INFINITY,
            collision_at_ns: None,
            last_truth: None,
            last_policy: None,
            phase: usize::MAX,
            phase_start_ns: 0,
            phase_judgeable: false,
            within_since_ns: None,
            policy_at_last_sample: false,
            phases_judged: 0,
            phases_converged: 0,
            last_verdict: None,
            last_error: None,
            max_end_gap_error_pct: 0.0,
        }
    }

    /// Closes the current phase at the last observed instant and judges it if it qualifies.
    fn close_phase(&mut self, profile: &LeadProfile) {
        let Some(last) = self.last_truth else {
            return;
        };
        // A phase that ends without a planner (e.g. in the `parked` mode) is not judged.
        if self.phase == usize::MAX || !self.phase_judgeable || !self.policy_at_last_sample {
            return;
        }
        let observed_ns = last.time_ns.saturating_sub(self.phase_start_ns);
        if observed_ns < self.rule.window_ns {
            return;
        }
        let window_start_ns = last.time_ns - self.rule.window_ns;
        let converged = self.within_since_ns.is_some_and(|s| s <= window_start_ns);
        self.phases_judged += 1;
        if let Some(e) = self.last_error {
            self.max_end_gap_error_pct = self.max_end_gap_error_pct.max(e * 100.0);
        }
        if converged {
            self.phases_converged += 1;
        }
        self.last_verdict = Some((profile.kind(self.phase), converged));
    }

    /// Takes one sample: the truth after a world step, and the planner's policy if a fresh
    /// request was visible.
    pub fn observe(
        &mut self,
        profile: &LeadProfile,
        truth: &GroundTruth,
        policy: Option<GapPolicy>,
    ) {
        self.min_gap_m = self.min_gap_m.min(truth.gap_m);
        if truth.gap_m <= 0.0 && self.collision_at_ns.is_none() {
            self.collision_at_ns = Some(truth.time_ns);
        }
        let phase = profile.phase_index(truth.time_ns);
        if phase != self.phase {
            self.close_phase(profile);
            self.phase = phase;
            self.phase_start_ns = truth.time_ns;
            let steady = profile.phase(phase).is_none_or(|p| p.accel_mps2 == 0.0);
            self.phase_judgeable = steady;
            self.within_since_ns = None;
            self.last_error = None;
        }
        self.last_truth = Some(*truth);
        if policy.is_some() {
            self.last_policy = policy;
        }
        self.policy_at_last_sample = policy.is_some();
        if !self.phase_judgeable {
            return;
        }
        if truth.lead_speed_mps < self.rule.min_lead_speed_mps {
            self.phase_judgeable = false;
            return;
        }
        let Some(policy) = policy else {
            // No planner request (not yet, or the planner is not released): the gap cannot
            // count as converged to a target nobody set.
            self.within_since_ns = None;
            self.last_error = None;
            return;
        };
        let desired_m = policy.desired_gap_m(truth.ego_speed_mps);
        let error = (truth.gap_m - desired_m).abs() / desired_m;
        self.last_error = Some(error);
        if error <= self.rule.tolerance {
            self.within_since_ns.get_or_insert(truth.time_ns);
        } else {
            self.within_since_ns = None;
        }
    }

    /// Judges the phase in progress at the end of the run and returns the outcome lines.
    pub fn conclude(&mut self, profile: &LeadProfile) -> Vec<(String, String)> {
        self.close_phase(profile);
        // Closing twice (a second `conclude`) must not count the phase again.
        self.phase_judgeable = false;
        let mut out = Vec::new();
        let mut line = |k: &str, v: String| out.push((k.to_string(), v));
        let Some(t) = self.last_truth else {
            line("sim_time_s", "0 (the world never ran)".into());
            return out;
        };
        line("sim_time_s", format!("{:.3}", ns_to_s(t.time_ns)));
        line("lead_phase_at_end", profile.kind(self.phase).name().into());
        line("min_gap_m", format!("{:.2}", self.min_gap_m));
        line(
            "collision",
            match self.collision_at_ns {
                Some(ns) => format!("true (at {:.3} s)", ns_to_s(ns)),
                None => "false".into(),
            },
        );
        line("final_gap_m", format!("{:.2}", t.gap_m));
        line("final_ego_speed_mps", format!("{:.2}", t.ego_speed_mps));
        line("final_lead_speed_mps", format!("{:.2}", t.lead_speed_mps));
        let moving = t.ego_speed_mps >= 0.1;
        line(
            "final_time_gap_s",
            if moving {
                format!("{:.3}", t.gap_m / t.ego_speed_mps)
            } else {
                "n/a (ego at standstill)".into()
            },
        );
        line(
            "target_time_gap_s",
            match (self.last_policy, moving) {
                // The gap the planner aims at, as a time gap at the final speed: it
                // includes the standstill distance, so it compares to final_time_gap_s.
                (Some(p), true) => format!(
                    "{:.3} (policy {:.2} s + {:.1} m standstill)",
                    p.desired_gap_m(t.ego_speed_mps) / t.ego_speed_mps,
                    p.time_gap_s,
                    p.standstill_m
                ),
                (Some(p), false) => format!(
                    "n/a (policy {:.2} s + {:.1} m standstill)",
                    p.time_gap_s, p.standstill_m
                ),
                (None, _) => "n/a (no planner request seen)".into(),
            },
        );
        line(
            "time_gap_converged",
            match self.last_verdict {
                Some((kind, ok)) => format!(
                    "{ok} (within {:.0}% over the last {:.1} s of the {} phase)",
                    self.rule.tolerance * 100.0,
                    ns_to_s(self.rule.window_ns),
                    kind.name()
                ),
                None => format!(
                    "n/a (no steady phase with a moving lead and an active planner lasted {:.1} s)",
                    ns_to_s(self.rule.window_ns)
                ),
            },
        );
        line(
            "steady_phases_converged",
            format!("{}/{}", self.phases_converged, self.phases_judged),
        );
        line(
            "max_gap_error_pct_at_steady_phase_ends",
            format!("{:.2}", self.max_end_gap_error_pct),
        );
        out
    }
}

/// The world task.
pub struct World {
    applied_in: Reader<AppliedCommand>,
    request_in: Reader<AccelRequest>,
    truth_out: Writer<GroundTruth>,
    ego_out: Writer<EgoState>,
    sim: WorldSim,
    started: bool,
    /// The command held over the next step.
    command_mps2: f64,
    request_timeout_ns: u64,
    tracker: OutcomeTracker,
    publish_errors: u64,
}

/// Builds the `world` task from its manifest parameters. The lead profile's phases are
/// `<phase>_s` (duration) and, for accelerating phases, `<phase>_mps2`, with phases
/// `cruise`, `brake_hard`, `accelerate`, `steady`, `stop`, `standstill`, `go`.
pub fn build(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    let step_ns = b.timing().period_ns;
    if step_ns == 0 {
        return Err(b.fail("the world integrates with its period as step, which must be > 0"));
    }
    let accel_min_mps2 = b.get(&vehicle::EGO_ACCEL_MIN_MPS2)?;
    let vehicle = VehicleParams {
        lag_s: b.get(&vehicle::EGO_LAG_S)?,
        accel_max_mps2: b.get(&vehicle::EGO_ACCEL_MAX_MPS2)?,
        accel_min_mps2,
        rolling_mps2: b.get(&vehicle::EGO_ROLLING_MPS2)?,
        aero_per_m: b.get(&vehicle::EGO_AERO_PER_M)?,
    };
    let mut phases = ProfileSpec::default().phases;
    for (slot, (kind, duration, accel)) in phases.iter_mut().zip(vehicle::PHASE_PARAMS) {
        // Constant-speed phases have no acceleration to set.
        let accel_mps2 = accel.map_or(Ok(0.0), |a| b.get(&a))?;
        *slot = (kind, b.get(&duration)?, accel_mps2);
    }
    let profile = ProfileSpec {
        phases,
        jitter: b.get(&vehicle::PROFILE_JITTER)?,
        seed: b.get(&vehicle::PROFILE_SEED)?,
    };
    let config = WorldConfig {
        vehicle,
        profile,
        lead_speed_mps: b.get(&LEAD_SPEED_MPS)?,
        ego_speed_mps: b.get(&EGO_SPEED_MPS)?,
        initial_gap_m: b.get(&INITIAL_GAP_M)?,
        step_ns,
    };
    let dr = ConvergenceRule::default();
    let rule = ConvergenceRule {
        tolerance: b.get(&CONVERGE_TOLERANCE)?,
        window_ns: b.get(&CONVERGE_WINDOW_MS)?,
        min_lead_speed_mps: dr.min_lead_speed_mps,
    };
    let sim = WorldSim::new(config, 0);
    Ok(Box::new(World {
        applied_in: b.reader(TOPIC_APPLIED_COMMAND)?,
        request_in: b.reader(TOPIC_ACCEL_REQUEST)?,
        truth_out: b.writer(TOPIC_TRUTH)?,
        ego_out: b.writer(TOPIC_EGO_STATE)?,
        command_mps2: sim.cruise_command_mps2(),
        sim,
        started: false,
        request_timeout_ns: b.get(&REQUEST_TIMEOUT_MS)?,
        tracker: OutcomeTracker::new(rule),
        publish_errors: 0,
    }))
}

impl Task for World {
    fn step(&mut self, ctx: &StepContext) {
        let now_ns = ctx.release_ns();
        if self.started {
            self.sim.advance_to(now_ns, self.command_mps2);
        } else {
            // The simulation starts at the first release, whatever the epoch offset.
            self.sim = WorldSim::new(self.sim.config, now_ns);
            self.started = true;
        }
        let truth = self.sim.truth();
        let ego = EgoState {
            time_ns: truth.time_ns,
            speed_mps: truth.ego_speed_mps,
            accel_mps2: truth.ego_accel_mps2,
        };
        if self.truth_out.publish(ctx, |t| *t = truth).is_err() {
            self.publish_errors += 1;
        }
        if self.ego_out.publish(ctx, |e| *e = ego).is_err() {
            self.publish_errors += 1;
        }
        // The newest applied command is held over the next step; without one (the
        // actuator has not published yet) the drive train keeps what it had.
        if let Some(applied) = self.applied_in.read(ctx) {
            self.command_mps2 = applied.accel_mps2;
        }
        let request_timeout_ns = self.request_timeout_ns;
        let policy = self
            .request_in
            .read(ctx)
            .filter(|r| fresh(now_ns, r.time_ns, request_timeout_ns))
            .map(|r| GapPolicy {
                time_gap_s: r.time_gap_s,
                standstill_m: r.standstill_m,
            });
        self.tracker.observe(&self.sim.profile, &truth, policy);
    }

    fn finish(&mut self, report: &mut TaskReport) {
        report.outcome = self.tracker.conclude(&self.sim.profile);
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

    fn policy() -> GapPolicy {
        GapPolicy {
            time_gap_s: 1.8,
            standstill_m: 2.0,
        }
    }

    #[test]
    fn advance_integrates_whole_steps_and_never_goes_back() {
        let mut sim = WorldSim::new(WorldConfig::default(), 0);
        let hold = sim.cruise_command_mps2();
        sim.advance_to(25 * MS, hold);
        assert_eq!(sim.time_ns, 25 * MS);
        let t = sim.truth();
        // Two 10 ms steps at 20 m/s, both cruising.
        assert!(
            (t.ego_position_m - 0.4).abs() < 1e-9,
            "{}",
            t.ego_position_m
        );
        assert!((t.gap_m - 44.0).abs() < 1e-9);
        sim.advance_to(5 * MS, hold);
        assert_eq!(sim.time_ns, 25 * MS);
    }

    #[test]
    fn collision_and_min_gap_are_recorded() {
        let cfg = WorldConfig::default();
        let mut sim = WorldSim::new(cfg, 0);
        let mut tracker = OutcomeTracker::new(ConvergenceRule::default());
        // Full throttle into the lead, which brakes hard at 3 s.
        for k in 0..600u64 {
            sim.advance_to(k * 10 * MS, 3.0);
            tracker.observe(&sim.profile, &sim.truth(), Some(policy()));
        }
        assert!(tracker.collision_at_ns.is_some());
        assert!(tracker.min_gap_m <= 0.0);
        let lines = tracker.conclude(&sim.profile);
        let collision = lines.iter().find(|(k, _)| k == "collision");
        assert!(
            collision.is_some_and(|(_, v)| v.starts_with("true")),
            "{lines:?}"
        );
    }

    fn truth_at(time_ns: u64, gap_m: f64) -> GroundTruth {
        GroundTruth {
            time_ns,
            lead_position_m: gap_m,
            lead_speed_mps: 20.0,
            lead_accel_mps2: 0.0,
            ego_position_m: 0.0,
            ego_speed_mps: 20.0,
            ego_accel_mps2: 0.0,
            gap_m,
        }
    }

    #[test]
    fn convergence_needs_the_whole_window_within_tolerance() {
        let profile = LeadProfile::new(&ProfileSpec::default());
        // Desired gap at 20 m/s: 38 m. Within 10% is 34.2..41.8 m.
        let run = |gap_at: &dyn Fn(u64) -> f64| {
            let mut t = OutcomeTracker::new(ConvergenceRule::default());
            for k in 0..300u64 {
                let ns = k * 10 * MS;
                t.observe(&profile, &truth_at(ns, gap_at(ns)), Some(policy()));
            }
            t.conclude(&profile);
            t.last_verdict
        };
        assert_eq!(run(&|_| 38.0), Some((PhaseKind::Cruise, true)));
        // Outside tolerance until 1.5 s, inside after: the last second (1.99 to 2.99 s) is
        // clean, so converged.
        assert_eq!(
            run(&|ns| if ns < 1500 * MS { 45.0 } else { 39.0 }),
            Some((PhaseKind::Cruise, true))
        );
        // One excursion in the last second spoils it.
        assert_eq!(
            run(&|ns| if ns == 2500 * MS { 43.0 } else { 38.0 }),
            Some((PhaseKind::Cruise, false))
        );
    }

    #[test]
    fn phases_without_planner_or_shorter_than_the_window_are_not_judged() {
        let profile = LeadProfile::new(&ProfileSpec::default());
        let mut t = OutcomeTracker::new(ConvergenceRule::default());
        for k in 0..50u64 {
            t.observe(&profile, &truth_at(k * 10 * MS, 38.0), Some(policy()));
        }
        t.conclude(&profile);
        assert_eq!((t.phases_judged, t.last_verdict), (0, None));

        let mut t = OutcomeTracker::new(ConvergenceRule::default());
        for k in 0..250u64 {
            t.observe(&profile, &truth_at(k * 10 * MS, 38.0), None);
        }
        t.conclude(&profile);
        assert_eq!((t.phases_judged, t.last_verdict), (0, None));
    }
}

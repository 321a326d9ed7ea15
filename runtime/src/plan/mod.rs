//! Offline schedule synthesis, an independent verifier, and analytic chain bounds.
//!
//! Owns: turning a validated [`Deployment`] into a [`Plan`]: per mode, per core, a static
//! table of non-overlapping windows over one hyperperiod; the buffer sizing of every
//! channel; the analytic end-to-end bounds of every declared chain. It is pure: no I/O, no
//! clocks, no threads. It must never depend on anything in takt but `manifest`.
//!
//! (Interface fixed; synthesis, verification and bounds are being written.)

use crate::manifest::{Deployment, TaskId};

/// One job's reserved slot on a core, relative to the start of a hyperperiod cycle.
///
/// The dispatcher starts the job at `cycle_start + start_ns`. The job's logical release is
/// `cycle_start + release_ns` and its LET deadline `cycle_start + deadline_ns`.
/// Invariants (checked by [`verify`]): `release_ns <= start_ns`,
/// `start_ns + budget_ns <= min(deadline_ns, hyperperiod_ns)`, windows of one core never
/// overlap, and they are sorted by `start_ns`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// When the dispatcher starts the job, ns from the cycle start.
    pub start_ns: u64,
    /// The task whose job runs here (index into `Deployment::tasks`).
    pub task: TaskId,
    /// The budget reserved (the task's WCET budget).
    pub budget_ns: u64,
    /// Logical release of the job, ns from the cycle start (`k * period + offset`).
    pub release_ns: u64,
    /// Logical deadline (`release_ns + let`), ns from the cycle start; may exceed the
    /// hyperperiod (LET visibility then falls into the next cycle).
    pub deadline_ns: u64,
    /// Which job of the task inside the cycle this is (0, 1, ...).
    pub job_in_cycle: u64,
}

/// The table of one core in one mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreTable {
    pub core: usize,
    /// Sorted by `start_ns`, non-overlapping.
    pub windows: Vec<Window>,
    /// Sum of the windows' budgets over the hyperperiod, in parts per million of it.
    pub utilization_ppm: u64,
}

/// The tables of one mode: one per core that hosts at least one of its tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModePlan {
    /// Index into `Deployment::modes`.
    pub mode: usize,
    pub cores: Vec<CoreTable>,
}

/// Buffer sizes of one channel (same meaning as `port::Sizing`, kept here so `plan` stays
/// independent of `port`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelSizing {
    /// Samples queued per reader between two of its reads.
    pub buffer: usize,
    /// Samples a late-joining reader receives.
    pub history: usize,
    /// Samples one reader may hold at once (current + not-yet-visible ones).
    pub max_borrowed: usize,
}

/// Analytic end-to-end bounds of one declared chain under LET.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainBound {
    /// Index into `Deployment::chains`.
    pub chain: usize,
    /// Upper bound on the age of the sensor data the last task acts on, measured from
    /// the release of the first task's job that produced it to the release of the last
    /// task's job that reads the result.
    pub max_data_age_ns: u64,
    /// Upper bound on the time from a change at the chain's input (just after a release
    /// of the first task) to the first output of the last task that reflects it, measured
    /// to that output's visibility (LET deadline).
    pub max_reaction_ns: u64,
}

/// A complete, verified-or-not schedule for a deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub hyperperiod_ns: u64,
    /// One per `Deployment::modes`, same order.
    pub modes: Vec<ModePlan>,
    /// One per `Deployment::channels`, same order.
    pub channels: Vec<ChannelSizing>,
    /// One per `Deployment::chains`, same order.
    pub chains: Vec<ChainBound>,
}

/// Why a task set could not be scheduled: which mode, core and window, by how much.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unschedulable {
    pub reasons: Vec<String>,
}

impl std::fmt::Display for Unschedulable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, r) in self.reasons.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  {r}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Unschedulable {}

/// One broken invariant found by [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub message: String,
}

/// Synthesizes the tables of every mode, the channel sizing and the chain bounds.
pub fn synthesize(d: &Deployment) -> Result<Plan, Unschedulable> {
    let _ = d;
    Err(Unschedulable {
        reasons: vec!["plan synthesis is being written".into()],
    })
}

/// Re-checks a plan against the deployment without sharing code with [`synthesize`].
pub fn verify(d: &Deployment, p: &Plan) -> Result<(), Vec<Violation>> {
    let _ = (d, p);
    Err(vec![Violation {
        message: "plan verification is being written".into(),
    }])
}

/// The human-readable plan: per mode and core, the table, utilization, hyperperiod and
/// chain bounds.
pub fn render_text(d: &Deployment, p: &Plan) -> String {
    let _ = (d, p);
    String::new()
}

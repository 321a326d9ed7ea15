//! Offline schedule synthesis, an independent verifier, and analytic chain bounds.
//!
//! Owns: turning a validated [`Deployment`] into a [`Plan`]: per mode, per core, a static
//! table of non-overlapping windows over one hyperperiod; the buffer sizing of every
//! channel; the exact end-to-end bounds of every declared chain under LET; and the
//! re-check of any plan against its deployment. It is pure: no I/O, no clocks, no threads.
//! It must never depend on anything in takt but `manifest` (and the pure duration
//! formatter `time::format_ns` for its text rendering).
//!
//! # Parts
//!
//! * `synth`: job enumeration, necessary conditions, non-preemptive EDF list scheduling,
//!   and, when that fails, the bounded search of `search`.
//! * `sizing` and `bounds`: channel sizing and chain bounds, computed from the synthesized
//!   tables.
//! * `verify`: the independent verifier. It shares no code with the four parts above
//!   (only the plain data types of this file), so a synthesis bug cannot pass silently by
//!   being repeated in the check.
//! * `requirements`: the chain bounds against the manifest's `max_data_age` and
//!   `max_reaction`, with the task or hop that contributes most to a missed one.
//! * `render`: the human-readable text of a plan.
//!
//! # Design choices
//!
//! * **Windows never cross the hyperperiod boundary.** A job released near the end of the
//!   cycle whose LET deadline lies in the next cycle still has its window end by the cycle
//!   end (`start + budget <= min(deadline, hyperperiod)`). Every cycle's tables are thus
//!   self-contained: a mode switch, which takes effect only at a hyperperiod boundary, swaps
//!   whole tables on every core without a job of the old mode still running or owed. LET
//!   visibility is unaffected: outputs still become visible at the (possibly next-cycle)
//!   deadline. The price: a task's last job of the cycle is released at
//!   `hyperperiod - period + offset`, so `offset + budget <= period` must hold for every
//!   task; synthesis names the task and job when it does not.
//! * **Non-preemptive windows.** The dispatcher runs a job from its window start for at
//!   most its budget; nothing preempts it, so the tables need no priority analysis and the
//!   verifier only has to check intervals.
//! * **Channel sizing is exact for the tables**, assuming a writer may publish anywhere in
//!   its window and a reader may read anywhere in its own (see `sizing`), over every pair of
//!   consecutive cycles in any two modes. Buffers stay as small as that allows: a 4 MiB
//!   message pays for every sample slot.
//! * **Chain bounds are exact, not pessimistic**: under LET the data flow is a function of
//!   the schedule, so they are computed by following jobs, not by a formula over periods.
//! * **Integer nanoseconds everywhere**; utilization is reported in parts per million,
//!   rounded down.

mod bounds;
mod jobs;
mod render;
mod requirements;
mod search;
mod sizing;
mod synth;
#[cfg(test)]
mod tests;
mod verify;

use crate::manifest::{Deployment, TaskId};

pub use synth::spin_ns;

pub use requirements::{
    check_requirements, contributions, excess_ns, Contribution, Part, Requirement,
    RequirementViolation, REQUIREMENTS,
};

/// One job's reserved slot on a core, relative to the start of a hyperperiod cycle.
///
/// The dispatcher starts the job at `cycle_start + start_ns`. The job's logical release is
/// `cycle_start + release_ns` and its LET deadline `cycle_start + deadline_ns`.
/// Invariants (checked by [`verify`]): `release_ns <= start_ns`,
/// `start_ns + budget_ns <= min(deadline_ns, hyperperiod_ns)`, windows of one core never
/// overlap, and they are sorted by `start_ns`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CoreTable {
    pub core: usize,
    /// Sorted by `start_ns`, non-overlapping.
    pub windows: Vec<Window>,
    /// Sum of the windows' budgets over the hyperperiod, in parts per million of it,
    /// rounded down.
    pub utilization_ppm: u64,
    /// Spinning on this core per hyperperiod (`wake = { spin = ... }`; 0 when it sleeps),
    /// counted as busy time. Between the starts of two consecutive windows (cyclically,
    /// `gap` apart) the dispatcher runs the first job (`e` of its budget `b`) and spins at
    /// most the margin `m` before the second: busy `e + min(m, gap - e) = min(e + m, gap)`,
    /// largest when the job uses its budget. So this is `sum of min(m, gap - b)` and
    /// `budgets + spin_ns` is the most CPU the core's dispatcher can take per hyperperiod
    /// (never more than the hyperperiod). A job that ends early spins longer but is busy
    /// less in total.
    pub spin_ns: u64,
}

/// The tables of one mode: one per core that hosts at least one of its tasks, in ascending
/// core order.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModePlan {
    /// Index into `Deployment::modes`.
    pub mode: usize,
    pub cores: Vec<CoreTable>,
}

/// Buffer sizes of one channel (same meaning as `port::Sizing`, kept here so `plan` stays
/// independent of `port`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChannelSizing {
    /// Samples queued per reader between two of its reads.
    pub buffer: usize,
    /// Samples a late-joining reader receives.
    pub history: usize,
    /// Samples one reader may hold at once (current + not-yet-visible ones).
    pub max_borrowed: usize,
}

/// Exact end-to-end bounds of one declared chain under LET.
///
/// Under LET the data flow is a function of the releases and deadlines alone: a job of
/// chain task `i + 1` released at `r` reads the output of the newest job of task `i` whose
/// deadline is `<= r`. Following that link backwards from a job of the last task down to a
/// job of the first task gives the job's *origin*. Both figures are exact worst cases over
/// the steady state of `mode` (the pattern repeats every hyperperiod; start-up instances
/// whose chain has no origin yet are not counted).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainBound {
    /// Index into `Deployment::chains`.
    pub chain: usize,
    /// The mode (index into `Deployment::modes`) the bounds were computed in: the default
    /// mode when every task of the chain is active there, otherwise the first mode where
    /// they all are. `None` when no mode runs the whole chain; both bounds are then 0.
    pub mode: Option<usize>,
    /// Maximum data age: over all jobs `J` of the last task, the deadline of `J` (when its
    /// output becomes visible) minus the release of `J`'s origin job of the first task.
    pub max_data_age_ns: u64,
    /// Maximum reaction time to an input change that happens just after the release of a
    /// first-task job `j - 1` (so `j - 1` misses it and job `j` is the first to read it):
    /// over all `j`, the deadline of the first last-task job whose origin is `j` or later,
    /// minus the release of `j - 1`.
    pub max_reaction_ns: u64,
}

/// A complete, verified-or-not schedule for a deployment.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
///
/// Fails with every reason found: the input rule or necessary condition that is broken
/// (utilization above 1 on a core, a job whose budget cannot fit between its release and
/// its deadline, a precedence cycle), or the mode, core and job that misses its deadline
/// when neither list scheduling nor the bounded search found a table, saying whether the
/// search was exhaustive (no table exists) or stopped at its limit.
pub fn synthesize(d: &Deployment) -> Result<Plan, Unschedulable> {
    synth::synthesize(d)
}

/// Re-checks a plan against the deployment without sharing code with [`synthesize`].
///
/// Returns every violation found, each naming the mode, core, task and job concerned.
pub fn verify(d: &Deployment, p: &Plan) -> Result<(), Vec<Violation>> {
    verify::verify(d, p)
}

/// The human-readable plan: the hyperperiod; per mode and core the utilization and the
/// table (start, end, task, job, release, deadline, slack); the channel sizing; the chain
/// bounds, each next to its requirement (met, exceeded, or none). Never panics, also not on
/// a plan that fails [`verify`].
pub fn render_text(d: &Deployment, p: &Plan) -> String {
    render::render_text(d, p)
}

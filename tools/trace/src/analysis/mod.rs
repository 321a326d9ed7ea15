//! Pure trace analysis: records in, figures out.
//!
//! Owns: [`analyze`], which runs the five analyses below over the merged records of one
//! deployment run and gathers their results in an [`Analysis`], and the names of tasks,
//! topics and modes as the figures print them. It must never do I/O, read a clock or print:
//! [`crate::load()`] reads the files, [`mod@crate::report`] and [`crate::perfetto`] (and the
//! `takt trace` verbs) present what it returns, and its tests feed it hand-made records.
//!
//! One module per analysis, each with its definitions:
//!
//! * [`mod@jobs`]: every job rebuilt from its records ([`Job`]);
//! * [`tasks`]: per-task release lateness, execution time, deadline misses, overruns, skips
//!   and who caused them ([`TaskFigures`]);
//! * [`chains`]: the measured data age and reaction time of every declared chain, found by
//!   following sample sequence numbers ([`ChainFigures`]);
//! * [`modes`]: the mode switches, once each ([`ModeSwitch`]);
//! * [`releases`]: every release the plan demanded, accounted per task as seen, missed,
//!   duplicate or unplanned ([`Releases`]);
//!
//! with [`losses`] (where full rings lost records, so that nothing is guessed across them)
//! and [`mod@quantiles`] (min/p50/p99/max) beside them.
//!
//! # What the records say (see `takt::dispatch`, function `job`)
//!
//! Per job, all with the task, the job index and `logical_ns` = the logical release since
//! the epoch: `Release` (`time_ns` = actual wake-up, `a` = planned window start in logical
//! ns since the epoch, `b` = budget), then either `Skip` and nothing else, or `Start`, one
//! `Read`/`Publish` per port the job used, `End` (`a` = execution ns, `b` = off-CPU ns),
//! `Miss` if it ended after its LET deadline and `Overrun` if the job ran over its budget.
//! `Skip`, `Overrun` and `Miss` carry in `aux` who caused them (1 platform, 2 takt/task, 0
//! or anything else: not attributed, as in files before trace format 3). `ModeSwitch`
//! records carry the hyperperiod cycle in `job` and may come once per core for the same
//! switch; `Dropped` markers say how many records a full ring lost and when.

pub mod chains;
pub mod jobs;
pub mod losses;
pub mod modes;
pub mod quantiles;
pub mod releases;
pub mod tasks;
#[cfg(test)]
pub(crate) mod testkit;

use takt::trace::{ClockKind, TraceHeader, TraceRecord};

pub use chains::{ChainFigures, InvalidChain, Origin};
pub use jobs::{jobs, Job, Published};
pub use losses::LossWindow;
pub use modes::ModeSwitch;
pub use quantiles::{quantiles, Quantiles};
pub use releases::{Duplicate, JobRange, ReleaseBasis, Releases, TaskReleases, Unaccounted};
pub use tasks::{FaultFigures, MissAttribution, MissCounts, TaskFigures, MAX_UNDECLARED_TASK_ROWS};

/// Everything the analyses found in one run: what reports print, export or plot.
#[derive(Clone, Debug)]
pub struct Analysis {
    pub epoch_ns: u64,
    pub hyperperiod_ns: u64,
    pub clock: ClockKind,
    pub jobs: Vec<Job>,
    pub tasks: Vec<TaskFigures>,
    pub chains: Vec<ChainFigures>,
    pub mode_switches: Vec<ModeSwitch>,
    pub losses: Vec<LossWindow>,
    /// Every task's releases against the plan (see [`releases`]).
    pub releases: Releases,
}

#[cfg(test)]
impl Analysis {
    /// The job `(task, job)`, if recorded.
    pub fn job(&self, task: u32, job: u64) -> Option<&Job> {
        jobs::find_job(&self.jobs, task, job)
    }
}

/// The name of task `task`, or `#task` when the header does not have it.
pub fn task_name(header: &TraceHeader, task: u32) -> String {
    header
        .task_name(task)
        .map_or_else(|| format!("#{task}"), str::to_string)
}

/// The name of port `port`, or `#port`.
pub fn topic_name(header: &TraceHeader, port: u16) -> String {
    header
        .topic_name(port)
        .map_or_else(|| format!("#{port}"), str::to_string)
}

/// The name of mode `mode`, or `#mode`.
pub fn mode_name(header: &TraceHeader, mode: u64) -> String {
    header
        .mode_name(mode)
        .map_or_else(|| format!("#{mode}"), str::to_string)
}

/// Analyses the (merged, time-ordered) records of one deployment run.
pub fn analyze(header: &TraceHeader, records: &[TraceRecord]) -> Analysis {
    let jobs = jobs::jobs(records);
    let losses = losses::loss_windows(records);
    let rows = tasks::task_rows(header, &jobs);
    let tasks = tasks::task_figures(header, &jobs, &rows.tasks);
    let lost_spans = losses::LostSpans::new(&losses);
    let chains = header
        .chains
        .iter()
        .map(|c| chains::chain_figures(header, c, &jobs, &lost_spans))
        .collect();
    let switches = modes::mode_switches(header, records);
    let mut releases = releases::releases(header, records, &switches, &losses, &rows.tasks);
    if let Some(note) = rows.note {
        releases.notes.push(note);
    }
    Analysis {
        epoch_ns: header.epoch_ns,
        hyperperiod_ns: header.hyperperiod_ns,
        clock: header.clock,
        mode_switches: switches,
        jobs,
        tasks,
        chains,
        losses,
        releases,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::testkit::*;
    use takt::time::{LogicalNs, MonoNs};

    #[test]
    fn hostile_records_never_panic_and_rows_stay_bounded() {
        use proptest::prelude::*;
        // Records as a damaged-but-checksummed file could hold them: any kind, any task
        // (mostly near the header's, sometimes anywhere), any job, times and values.
        let task = prop_oneof![0u32..8, any::<u32>()];
        let record = (
            1u8..=10,
            0u8..2,
            0u16..4,
            task,
            prop_oneof![0u64..64, any::<u64>()],
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(|(kind, core, aux, task, job, time_ns, a, b)| {
                let mut r =
                    TraceRecord::release(core, task, job, LogicalNs(time_ns), MonoNs(0), a, b);
                r.kind = kind;
                r.aux = aux;
                r.time_ns = time_ns;
                r.logical_ns = time_ns / 2;
                r
            });
        proptest!(ProptestConfig::with_cases(200), |(
            records in prop::collection::vec(record, 0..400),
            moded in any::<bool>(),
        )| {
            let h = if moded { moded_header() } else { header() };
            let a = analyze(&h, &records);
            let declared = h.task_names.len().max(h.tasks.len());
            prop_assert!(a.tasks.len() <= declared + MAX_UNDECLARED_TASK_ROWS);
            prop_assert_eq!(a.releases.tasks.len(), a.tasks.len());
            for (f, r) in a.tasks.iter().zip(&a.releases.tasks) {
                prop_assert_eq!(f.task, r.task);
            }
        });
    }
}

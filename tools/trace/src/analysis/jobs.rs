//! The jobs of a run, rebuilt from the dispatcher's records.
//!
//! Owns: [`Job`] (one job's release, window, start, end, execution, overrun, skip, miss,
//! reads and publishes, each `None` when its record is missing) and [`jobs`], which groups
//! the records by `(task, job)`; lookups of one job or one task's jobs for the other
//! analyses. It must never judge a job (late, missed, overrun: that is `tasks`) nor guess a
//! missing record.

use std::collections::BTreeMap;

use takt::trace::{TraceEvent, TraceRecord, NO_TASK};

/// A published sample as a job's `Publish` record names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    pub port: u16,
    pub seq: u64,
    /// Logical ns since the epoch (the job's LET deadline).
    pub visible_at_ns: u64,
}

/// One job, rebuilt from its records. Fields are `None` when their record is missing (lost
/// in a full ring, or after the point where a damaged file breaks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub task: u32,
    /// The job index (`(release - offset) / period`).
    pub job: u64,
    /// The core whose ring carried its records.
    pub core: u8,
    /// Logical release, ns since the epoch.
    pub release_ns: u64,
    /// Actual wake-up on the deployment clock (`Release.time_ns`).
    pub released_at_ns: Option<u64>,
    /// The planned window, logical ns since the epoch.
    pub window_start_ns: Option<u64>,
    pub budget_ns: Option<u64>,
    pub start_ns: Option<u64>,
    pub end_ns: Option<u64>,
    pub execution_ns: Option<u64>,
    pub skipped: bool,
    /// The skip's attribution code (see the module docs).
    pub skip_attribution: u16,
    /// `(execution_ns, budget_ns, attribution code)` of an `Overrun` record.
    pub overrun: Option<(u64, u64, u16)>,
    /// Time off the CPU during the job (`End.b`; 0 in files before format 3).
    pub off_cpu_ns: Option<u64>,
    /// `(ns past the deadline, platform share ns, attribution code)` of a `Miss` record.
    pub miss: Option<(u64, u64, u16)>,
    /// `(first code, reports)` of a `Fault` record (trace format 4 on).
    pub fault: Option<(u16, u64)>,
    /// `(port, seq)` of every `Read`; seq 0 = no sample was visible.
    pub reads: Vec<(u16, u64)>,
    pub publishes: Vec<Published>,
}

impl Job {
    fn new(task: u32, job: u64, core: u8, release_ns: u64) -> Self {
        Job {
            task,
            job,
            core,
            release_ns,
            released_at_ns: None,
            window_start_ns: None,
            budget_ns: None,
            start_ns: None,
            end_ns: None,
            execution_ns: None,
            skipped: false,
            skip_attribution: 0,
            overrun: None,
            off_cpu_ns: None,
            miss: None,
            fault: None,
            reads: Vec::new(),
            publishes: Vec::new(),
        }
    }

    /// Whether both its `Start` and its `End` were recorded.
    pub fn executed(&self) -> bool {
        self.start_ns.is_some() && self.end_ns.is_some()
    }

    /// The sample the job took on `port` (the last `Read` if, unexpectedly, there are several).
    pub fn read_seq(&self, port: u16) -> Option<u64> {
        self.reads
            .iter()
            .rev()
            .find(|(p, _)| *p == port)
            .map(|&(_, seq)| seq)
    }

    /// The earliest physical time any of its records carries.
    pub fn first_time_ns(&self) -> Option<u64> {
        [self.released_at_ns, self.start_ns, self.end_ns]
            .into_iter()
            .flatten()
            .min()
    }
}

/// Rebuilds every job from `records`, sorted by `(task, job)`. Records without a task
/// (mode switches, drop markers, lifecycle events) are ignored here.
pub fn jobs(records: &[TraceRecord]) -> Vec<Job> {
    let mut by_key: BTreeMap<(u32, u64), Job> = BTreeMap::new();
    for r in records {
        if r.task == NO_TASK {
            continue;
        }
        let Ok(event) = r.event() else {
            // The reader refuses unknown kinds, so this only guards hand-made input.
            continue;
        };
        if matches!(
            event,
            TraceEvent::ModeSwitch { .. }
                | TraceEvent::Lifecycle { .. }
                | TraceEvent::Dropped { .. }
        ) {
            continue;
        }
        let job = by_key
            .entry((r.task, r.job))
            .or_insert_with(|| Job::new(r.task, r.job, r.core, r.logical_ns));
        match event {
            TraceEvent::Release {
                window_start_ns,
                budget_ns,
            } => {
                job.released_at_ns = Some(r.time_ns);
                job.window_start_ns = Some(window_start_ns);
                job.budget_ns = Some(budget_ns);
            }
            TraceEvent::Start => job.start_ns = Some(r.time_ns),
            TraceEvent::End {
                execution_ns,
                off_cpu_ns,
            } => {
                job.end_ns = Some(r.time_ns);
                job.execution_ns = Some(execution_ns);
                job.off_cpu_ns = Some(off_cpu_ns);
            }
            TraceEvent::Publish {
                port,
                seq,
                visible_at_ns,
            } => job.publishes.push(Published {
                port,
                seq,
                visible_at_ns,
            }),
            TraceEvent::Read { port, seq } => job.reads.push((port, seq)),
            TraceEvent::Overrun {
                execution_ns,
                budget_ns,
                attribution,
            } => job.overrun = Some((execution_ns, budget_ns, attribution)),
            TraceEvent::Skip { attribution } => {
                job.skipped = true;
                job.skip_attribution = attribution;
            }
            TraceEvent::Miss {
                late_ns,
                platform_ns,
                attribution,
            } => job.miss = Some((late_ns, platform_ns, attribution)),
            TraceEvent::Fault { code, reports } => job.fault = Some((code, reports)),
            TraceEvent::ModeSwitch { .. }
            | TraceEvent::Lifecycle { .. }
            | TraceEvent::Dropped { .. } => {}
        }
    }
    by_key.into_values().collect()
}

/// The job `(task, job)` in `jobs` (sorted by `(task, job)`), if recorded.
pub(crate) fn find_job(jobs: &[Job], task: u32, job: u64) -> Option<&Job> {
    jobs.binary_search_by(|j| (j.task, j.job).cmp(&(task, job)))
        .ok()
        .map(|i| &jobs[i])
}

/// The jobs of `task` in `jobs` (sorted by `(task, job)`).
pub(crate) fn jobs_of(jobs: &[Job], task: u32) -> &[Job] {
    let from = jobs.partition_point(|j| j.task < task);
    let to = jobs.partition_point(|j| j.task <= task);
    &jobs[from..to]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze;
    use crate::analysis::testkit::*;

    #[test]
    fn jobs_are_rebuilt_from_their_records() {
        let a = analyze(&header(), &clean_run(3));
        assert_eq!(a.jobs.len(), 3 + 6);
        let j = a.job(1, 3).unwrap();
        assert_eq!(j.release_ns, 16 * MS);
        assert_eq!(j.released_at_ns, Some(16 * MS + 10));
        assert_eq!(
            (j.start_ns, j.end_ns, j.execution_ns),
            (Some(16 * MS + 10), Some(16 * MS + 110), Some(100))
        );
        assert_eq!(j.read_seq(0), Some(2));
        assert_eq!(j.core, 1);
        assert!(j.executed() && !j.skipped);
        assert_eq!(
            a.job(0, 2).unwrap().publishes,
            vec![Published {
                port: 0,
                seq: 3,
                visible_at_ns: 22 * MS
            }]
        );
    }
}

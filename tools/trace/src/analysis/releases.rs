//! Release accounting: every release the plan demanded, seen, missed, duplicate or unplanned.
//!
//! Owns: the mode of each hyperperiod cycle as the records tell it, the expectation of which
//! tasks a mode releases ([`ReleaseBasis`]) and, per task, the [`TaskReleases`] against it.
//! It must never count a release it cannot place: a task without usable timing is counted
//! as seen but its planned and missed releases stay unknown ([`Unaccounted`]).
//!
//! Every release the plan demanded is accounted for, per task, over the task's *traced
//! interval*: from its first to its last `Release` record in any of the run's files (so the
//! start and end of the run, or of a process, are not misses). A job index encodes its
//! cycle (`job / (hyperperiod / period)`), and in every cycle of a mode each task of the
//! mode is released once per period, every other task not at all. The mode of each cycle
//! comes from the `ModeSwitch` records (the first one's `from` before it, each one's `to`
//! from its cycle on) and, without any, the header's default mode. Which tasks a mode
//! releases comes from the header's per-mode task sets (trace format 2); a format-1 trace
//! lacks them, so a task is then taken to be in a mode when some release of it falls in a
//! cycle of that mode ([`ReleaseBasis::Inferred`], which cannot notice a task that missed
//! every release of a mode). Then, per task:
//!
//! * planned = job indices in the interval whose cycle's mode releases the task;
//! * seen = distinct job indices with at least one `Release` record (a skipped job is seen:
//!   it was released, then skipped by its overrun policy);
//! * missed = planned jobs without any `Release` record; `missed_in_loss` of them fall in or
//!   next to a cycle where a ring lost records, so they may have been released unrecorded;
//! * duplicate = job indices released by more than one record (two processes of one app,
//!   e.g. the old and the new version of a hot swap, both ran the job);
//! * unplanned = seen jobs in cycles whose mode does not release the task.
//!
//! So `seen = planned - missed + unplanned` for every task with timing in the header.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use takt::trace::{EventKind, TraceHeader, TraceRecord, NO_TASK};

use super::losses::LossWindow;
use super::modes::ModeSwitch;
use super::{mode_name, task_name};

/// Where the expectation of which tasks a mode releases comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseBasis {
    /// The header's per-mode task sets (trace format 2).
    Header,
    /// The records: a task counts as released by a mode when some release of it falls in a
    /// cycle of that mode (format-1 traces, which carry no per-mode task sets).
    Inferred,
}

/// An inclusive range of one task's job indices, all in cycles of one mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobRange {
    pub first: u64,
    pub last: u64,
    /// The mode of their cycles; `None` when no switch was recorded and the header names no
    /// default mode.
    pub mode: Option<u64>,
    /// In a missed range: how many of its jobs fall in or next to a cycle where records were
    /// lost in a full ring (they may have been released without a record). 0 otherwise.
    pub in_loss: u64,
}

impl JobRange {
    /// How many job indices the range holds.
    pub fn count(&self) -> u64 {
        (self.last - self.first).saturating_add(1)
    }
}

/// A job released by more than one `Release` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Duplicate {
    pub job: u64,
    /// How many `Release` records name it (at least 2).
    pub records: u64,
}

/// Why a task's planned and missed releases cannot be computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unaccounted {
    /// The trace header has no timing for the task (an index beyond its task list).
    NoTiming,
    /// The task's period does not divide the hyperperiod (or either is 0), so a job index
    /// does not name a cycle.
    PeriodDoesNotDivide { period_ns: u64, hyperperiod_ns: u64 },
}

impl fmt::Display for Unaccounted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unaccounted::NoTiming => f.write_str("the trace header has no timing for it"),
            Unaccounted::PeriodDoesNotDivide {
                period_ns,
                hyperperiod_ns,
            } => write!(
                f,
                "its period ({period_ns} ns) does not divide the hyperperiod ({hyperperiod_ns} ns) in the trace header"
            ),
        }
    }
}

/// One task's releases against what the plan demanded in its traced interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskReleases {
    pub task: u32,
    pub name: String,
    /// `hyperperiod / period`; `None` when the header's timing does not give it.
    pub jobs_per_cycle: Option<u64>,
    /// The traced interval: the first and the last job index released, in any file.
    pub first_job: Option<u64>,
    pub last_job: Option<u64>,
    pub planned: u64,
    pub seen: u64,
    pub missed: u64,
    /// Of `missed`, those that may have been released but lost in a full ring.
    pub missed_in_loss: u64,
    pub duplicate: u64,
    pub unplanned: u64,
    /// The missed jobs, ascending.
    pub missed_jobs: Vec<JobRange>,
    pub duplicate_jobs: Vec<Duplicate>,
    /// The seen jobs in cycles whose mode does not release the task, ascending.
    pub unplanned_jobs: Vec<JobRange>,
    /// Why planned and missed could not be computed (no timing in the header, a period that
    /// does not divide the hyperperiod); seen and duplicate are counted regardless.
    pub unaccounted: Option<Unaccounted>,
}

impl TaskReleases {
    /// The hyperperiod cycle of job `job`, when the timing is known.
    pub fn cycle_of(&self, job: u64) -> Option<u64> {
        self.jobs_per_cycle.map(|n| job / n)
    }
}

/// Every task's [`TaskReleases`] (same order and index as [`Analysis::tasks`](super::Analysis::tasks)) and the
/// totals over all tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Releases {
    pub basis: ReleaseBasis,
    pub tasks: Vec<TaskReleases>,
    pub planned: u64,
    pub seen: u64,
    pub missed: u64,
    pub missed_in_loss: u64,
    pub duplicate: u64,
    pub unplanned: u64,
    /// Doubts about the expectation itself (switch records that disagree, a mode the header
    /// does not describe), one sentence each.
    pub notes: Vec<String>,
}

/// The mode of the whole cycles `[first_cycle, end_cycle)`; `end_cycle` `None` is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ModeSpan {
    first_cycle: u64,
    end_cycle: Option<u64>,
    mode: Option<u64>,
}

/// The mode timeline from the de-duplicated switches: before the first switch its `from`
/// (the header's default mode without any switch), from each switch on its `to`. Spans are
/// ascending, cover every cycle from 0, and the first starts at cycle 0.
fn mode_spans(
    header: &TraceHeader,
    switches: &[ModeSwitch],
    notes: &mut Vec<String>,
) -> Vec<ModeSpan> {
    let mut ordered: Vec<&ModeSwitch> = switches.iter().collect();
    ordered.sort_by_key(|s| (s.cycle, s.time_ns));
    // One switch per cycle. Every dispatcher records the same switch, so records that
    // disagree mean a corrupt or mixed-up trace: the first recorded wins, and it is said.
    let mut chosen: Vec<&ModeSwitch> = Vec::new();
    for s in ordered {
        match chosen.last() {
            Some(prev) if prev.cycle == s.cycle => notes.push(format!(
                "cycle {}: the mode switch records disagree (`{}` -> `{}` and `{}` -> `{}`); the first recorded is used",
                s.cycle, prev.from_name, prev.to_name, s.from_name, s.to_name
            )),
            _ => chosen.push(s),
        }
    }
    let default_mode = header.mode_tasks.as_ref().map(|m| m.default_mode);
    let initial = match (chosen.first(), default_mode) {
        (Some(first), Some(d)) => {
            if first.from_mode != d {
                notes.push(format!(
                    "the header's default mode is `{}` but the first recorded switch (cycle {}) leaves `{}`: an earlier switch is missing from the trace; cycles before {} are taken to be in `{}`",
                    mode_name(header, d),
                    first.cycle,
                    first.from_name,
                    first.cycle,
                    first.from_name
                ));
            }
            Some(first.from_mode)
        }
        (Some(first), None) => Some(first.from_mode),
        (None, d) => d,
    };
    let mut spans = Vec::with_capacity(chosen.len() + 1);
    let mut start = 0u64;
    let mut mode = initial;
    for (i, s) in chosen.iter().enumerate() {
        if i > 0 && mode != Some(s.from_mode) {
            notes.push(format!(
                "cycle {}: the switch leaves `{}`, but the previous recorded switch entered `{}`",
                s.cycle,
                s.from_name,
                mode.map_or_else(|| "?".to_string(), |m| mode_name(header, m))
            ));
        }
        if s.cycle > start {
            spans.push(ModeSpan {
                first_cycle: start,
                end_cycle: Some(s.cycle),
                mode,
            });
        }
        start = s.cycle;
        mode = Some(s.to_mode);
    }
    spans.push(ModeSpan {
        first_cycle: start,
        end_cycle: None,
        mode,
    });
    spans
}

/// The span holding `cycle` (spans start at cycle 0 and are ascending).
fn span_of(spans: &[ModeSpan], cycle: u64) -> &ModeSpan {
    let i = spans.partition_point(|s| s.first_cycle <= cycle);
    // The first span starts at cycle 0, so `i >= 1`; `spans` is never empty.
    &spans[i.saturating_sub(1)]
}

/// `hyperperiod / period` of `task`, or why it is not known.
fn jobs_per_cycle(header: &TraceHeader, task: u32) -> Result<u64, Unaccounted> {
    let Some(info) = header.tasks.get(task as usize) else {
        return Err(Unaccounted::NoTiming);
    };
    let h_ns = header.hyperperiod_ns;
    if info.period_ns == 0 || h_ns == 0 || !h_ns.is_multiple_of(info.period_ns) {
        return Err(Unaccounted::PeriodDoesNotDivide {
            period_ns: info.period_ns,
            hyperperiod_ns: h_ns,
        });
    }
    Ok(h_ns / info.period_ns)
}

/// Job-index ranges (inclusive, ascending, merged) where ring losses may have swallowed a
/// `Release` record of a task with `n` jobs per cycle: a record of cycle `c` carries a time
/// in `[epoch + c * H, epoch + (c + 2) * H)` (its window lies inside the cycle; a full cycle
/// of lateness is allowed for), so a loss in `[first_ns, last_ns]` may hold releases of the
/// cycles from the one before `first_ns` up to the one of `last_ns`.
fn loss_job_ranges(header: &TraceHeader, losses: &[LossWindow], n: u64) -> Vec<(u128, u128)> {
    let h_ns = header.hyperperiod_ns.max(1);
    let epoch = header.epoch_ns;
    let mut ranges: Vec<(u128, u128)> = losses
        .iter()
        .filter(|w| w.last_ns >= epoch)
        .map(|w| {
            let c_lo = (w.first_ns.saturating_sub(epoch) / h_ns).saturating_sub(1);
            let c_hi = (w.last_ns - epoch) / h_ns;
            let n = u128::from(n);
            (u128::from(c_lo) * n, (u128::from(c_hi) + 1) * n - 1)
        })
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
}

/// How many jobs of `[first, last]` lie in the merged `ranges`.
fn overlap(ranges: &[(u128, u128)], first: u64, last: u64) -> u64 {
    let (first, last) = (u128::from(first), u128::from(last));
    let start = ranges.partition_point(|r| r.1 < first);
    let mut count = 0u128;
    for &(lo, hi) in &ranges[start..] {
        if lo > last {
            break;
        }
        count += hi.min(last) - lo.max(first) + 1;
    }
    u64::try_from(count).unwrap_or(u64::MAX)
}

/// Accounts every task's releases (see the module docs), one entry per task of `rows`.
pub(crate) fn releases(
    header: &TraceHeader,
    records: &[TraceRecord],
    switches: &[ModeSwitch],
    losses: &[LossWindow],
    rows: &[u32],
) -> Releases {
    let mut notes = Vec::new();
    let spans = mode_spans(header, switches, &mut notes);

    // Every Release record as (task, job), sorted, then counted per job.
    let mut released: Vec<(u32, u64)> = records
        .iter()
        .filter(|r| r.kind == EventKind::Release as u8 && r.task != NO_TASK)
        .map(|r| (r.task, r.job))
        .collect();
    released.sort_unstable();
    let mut seen_by_task: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
    for (task, job) in released {
        let seen = seen_by_task.entry(task).or_default();
        match seen.last_mut() {
            Some((j, count)) if *j == job => *count += 1,
            _ => seen.push((job, 1)),
        }
    }

    // Which (task, mode) pairs the records show released: the expectation where the header
    // has none.
    let mut inferred: BTreeSet<(u32, Option<u64>)> = BTreeSet::new();
    for (&task, seen) in &seen_by_task {
        if let Ok(n) = jobs_per_cycle(header, task) {
            for &(job, _) in seen {
                inferred.insert((task, span_of(&spans, job / n).mode));
            }
        }
    }
    let basis = if header.mode_tasks.is_some() {
        ReleaseBasis::Header
    } else {
        ReleaseBasis::Inferred
    };
    if let Some(described) = &header.mode_tasks {
        let mut undescribed: Vec<u64> = spans
            .iter()
            .filter_map(|s| s.mode)
            .filter(|&m| {
                usize::try_from(m)
                    .ok()
                    .and_then(|i| described.tasks.get(i))
                    .is_none()
            })
            .collect();
        undescribed.sort_unstable();
        undescribed.dedup();
        for m in undescribed {
            notes.push(format!(
                "mode `{}` is not among the header's per-mode task sets; its releases are inferred from the records",
                mode_name(header, m)
            ));
        }
    }
    let planned_in = |task: u32, mode: Option<u64>| -> bool {
        if let (Some(described), Some(m)) = (&header.mode_tasks, mode) {
            if let Some(releases) = described.releases(m, task) {
                return releases;
            }
        }
        inferred.contains(&(task, mode))
    };

    let empty = Vec::new();
    let mut tasks = Vec::with_capacity(rows.len());
    for &task in rows {
        let seen = seen_by_task.get(&task).unwrap_or(&empty);
        let duplicate_jobs: Vec<Duplicate> = seen
            .iter()
            .filter(|(_, records)| *records > 1)
            .map(|&(job, records)| Duplicate { job, records })
            .collect();
        let mut t = TaskReleases {
            task,
            name: task_name(header, task),
            jobs_per_cycle: None,
            first_job: seen.first().map(|&(j, _)| j),
            last_job: seen.last().map(|&(j, _)| j),
            planned: 0,
            seen: seen.len() as u64,
            missed: 0,
            missed_in_loss: 0,
            duplicate: duplicate_jobs.len() as u64,
            unplanned: 0,
            missed_jobs: Vec::new(),
            duplicate_jobs,
            unplanned_jobs: Vec::new(),
            unaccounted: None,
        };
        let n = match jobs_per_cycle(header, task) {
            Ok(n) => n,
            Err(why) => {
                if !seen.is_empty() {
                    t.unaccounted = Some(why);
                }
                tasks.push(t);
                continue;
            }
        };
        t.jobs_per_cycle = Some(n);
        let (Some(lo), Some(hi)) = (t.first_job, t.last_job) else {
            tasks.push(t);
            continue;
        };
        let lost = loss_job_ranges(header, losses, n);
        // Spans that end before the traced interval hold none of its jobs.
        let first_span = spans.partition_point(|s| {
            s.end_cycle
                .is_some_and(|e| u128::from(e) * u128::from(n) <= u128::from(lo))
        });
        for span in &spans[first_span..] {
            // The span's jobs, clipped to the traced interval; u128 so no product overflows.
            let span_lo = (u128::from(span.first_cycle) * u128::from(n)).max(u128::from(lo));
            if span_lo > u128::from(hi) {
                break;
            }
            let span_hi = span
                .end_cycle
                .map_or(u128::from(hi), |e| u128::from(e) * u128::from(n) - 1)
                .min(u128::from(hi));
            if span_lo > span_hi {
                continue;
            }
            // Both lie in [lo, hi], so they fit in u64.
            let (span_lo, span_hi) = (span_lo as u64, span_hi as u64);
            let from = seen.partition_point(|&(j, _)| j < span_lo);
            let to = seen.partition_point(|&(j, _)| j <= span_hi);
            let inside = &seen[from..to];
            if planned_in(task, span.mode) {
                t.planned = t
                    .planned
                    .saturating_add((span_hi - span_lo).saturating_add(1));
                let mut next = u128::from(span_lo);
                for &(job, _) in inside {
                    if u128::from(job) > next {
                        t.missed_jobs
                            .push(missed_range(next as u64, job - 1, span.mode, &lost));
                    }
                    next = u128::from(job) + 1;
                }
                if next <= u128::from(span_hi) {
                    t.missed_jobs
                        .push(missed_range(next as u64, span_hi, span.mode, &lost));
                }
            } else {
                t.unplanned += inside.len() as u64;
                for &(job, _) in inside {
                    match t.unplanned_jobs.last_mut() {
                        Some(r) if r.mode == span.mode && r.last.checked_add(1) == Some(job) => {
                            r.last = job;
                        }
                        _ => t.unplanned_jobs.push(JobRange {
                            first: job,
                            last: job,
                            mode: span.mode,
                            in_loss: 0,
                        }),
                    }
                }
            }
        }
        t.missed = t
            .missed_jobs
            .iter()
            .fold(0u64, |sum, r| sum.saturating_add(r.count()));
        t.missed_in_loss = t
            .missed_jobs
            .iter()
            .fold(0u64, |sum, r| sum.saturating_add(r.in_loss));
        tasks.push(t);
    }
    let total =
        |f: fn(&TaskReleases) -> u64| tasks.iter().fold(0u64, |sum, t| sum.saturating_add(f(t)));
    Releases {
        basis,
        planned: total(|t| t.planned),
        seen: total(|t| t.seen),
        missed: total(|t| t.missed),
        missed_in_loss: total(|t| t.missed_in_loss),
        duplicate: total(|t| t.duplicate),
        unplanned: total(|t| t.unplanned),
        tasks,
        notes,
    }
}

fn missed_range(first: u64, last: u64, mode: Option<u64>, lost: &[(u128, u128)]) -> JobRange {
    JobRange {
        first,
        last,
        mode,
        in_loss: overlap(lost, first, last),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze;
    use crate::analysis::testkit::*;
    use takt::time::{LogicalNs, MonoNs};
    use takt::trace::TraceRecord;

    #[test]
    fn a_clean_run_plans_and_sees_every_release() {
        let a = analyze(&moded_header(), &clean_run(4));
        let r = &a.releases;
        assert_eq!(r.basis, ReleaseBasis::Header);
        let f = &r.tasks[1];
        assert_eq!((f.planned, f.seen, f.missed, f.duplicate), (8, 8, 0, 0));
        assert_eq!(
            (f.first_job, f.last_job, f.jobs_per_cycle),
            (Some(0), Some(7), Some(2))
        );
        assert_eq!(
            (r.planned, r.seen, r.missed, r.duplicate, r.unplanned),
            (12, 12, 0, 0, 0)
        );
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    #[test]
    fn gaps_become_missed_ranges_and_repeats_duplicates() {
        let mut records = releases_only(1, [0, 1, 4, 5, 5, 5, 9]);
        records.extend(releases_only(0, [0, 3]));
        let a = analyze(&moded_header(), &records);
        let f = &a.releases.tasks[1];
        assert_eq!((f.planned, f.seen, f.missed, f.duplicate), (10, 5, 5, 1));
        let missed: Vec<(u64, u64)> = f.missed_jobs.iter().map(|r| (r.first, r.last)).collect();
        assert_eq!(missed, vec![(2, 3), (6, 8)]);
        assert_eq!(f.duplicate_jobs, vec![Duplicate { job: 5, records: 3 }]);
        let s = &a.releases.tasks[0];
        assert_eq!((s.planned, s.seen, s.missed), (4, 2, 2));
        assert_eq!((a.releases.missed, a.releases.duplicate), (7, 1));
    }

    #[test]
    fn cycles_of_a_mode_without_the_task_are_not_planned_and_releases_there_are_unplanned() {
        // drive 0..=1, parked 2..=3, drive from 4. The filter (2 jobs a cycle) runs in
        // cycles 0, 1, 4 and, wrongly, in cycle 3.
        let mut records = releases_only(1, [0, 1, 2, 3, 6, 7, 8, 9]);
        records.extend(releases_only(0, 0..6));
        records.push(TraceRecord::mode_switch(
            0,
            2,
            LogicalNs(20 * MS),
            MonoNs(20 * MS),
            0,
            1,
        ));
        records.push(TraceRecord::mode_switch(
            1,
            2,
            LogicalNs(20 * MS),
            MonoNs(20 * MS),
            0,
            1,
        ));
        records.push(TraceRecord::mode_switch(
            0,
            4,
            LogicalNs(40 * MS),
            MonoNs(40 * MS),
            1,
            0,
        ));
        let a = analyze(&moded_header(), &records);
        let f = &a.releases.tasks[1];
        assert_eq!((f.planned, f.seen, f.missed, f.unplanned), (6, 8, 0, 2));
        assert_eq!(f.seen, f.planned - f.missed + f.unplanned);
        assert_eq!(
            f.unplanned_jobs,
            vec![JobRange {
                first: 6,
                last: 7,
                mode: Some(1),
                in_loss: 0
            }]
        );
        // The sensor is in both modes: all six cycles are planned.
        assert_eq!(a.releases.tasks[0].planned, 6);
    }

    #[test]
    fn without_mode_sets_the_modes_are_inferred_and_a_whole_missed_mode_goes_unseen() {
        // The filter runs in the drive cycles 0..=1 and 4 and is silent in the parked cycles
        // 2..=3. Inferred, parked does not release it (it was never seen there), so nothing
        // is missed; if the header says parked does release it, those cycles owe 4 jobs.
        let mut records = releases_only(1, [0, 1, 2, 3, 8, 9]);
        records.extend(releases_only(0, 0..5));
        records.push(TraceRecord::mode_switch(
            0,
            2,
            LogicalNs(20 * MS),
            MonoNs(20 * MS),
            0,
            1,
        ));
        records.push(TraceRecord::mode_switch(
            0,
            4,
            LogicalNs(40 * MS),
            MonoNs(40 * MS),
            1,
            0,
        ));
        let inferred = analyze(&header(), &records);
        assert_eq!(inferred.releases.basis, ReleaseBasis::Inferred);
        let f = &inferred.releases.tasks[1];
        assert_eq!((f.planned, f.missed, f.unplanned), (6, 0, 0));
        // Declared: parked releases the filter too, so cycles 2..=3 owe four releases.
        let mut h = moded_header();
        h.mode_tasks.as_mut().unwrap().tasks[1] = vec![0, 1];
        let declared = analyze(&h, &records);
        let f = &declared.releases.tasks[1];
        assert_eq!((f.planned, f.missed), (10, 4));
        assert_eq!(f.missed_jobs[0].mode, Some(1));
    }

    #[test]
    fn missed_releases_near_a_ring_loss_are_flagged_as_perhaps_unrecorded() {
        // Filter jobs 4..=5 (cycle 2) and 12..=13 (cycle 6) are missing; records were lost
        // during cycle 2 only.
        let mut records = releases_only(1, (0..16).filter(|j| !matches!(j, 4 | 5 | 12 | 13)));
        records.push(TraceRecord::dropped(1, 10, 4, MonoNs(21 * MS), 22 * MS));
        let a = analyze(&moded_header(), &records);
        let f = &a.releases.tasks[1];
        assert_eq!((f.missed, f.missed_in_loss), (4, 2));
        assert_eq!(
            f.missed_jobs.iter().map(|r| r.in_loss).collect::<Vec<_>>(),
            vec![2, 0]
        );
        assert_eq!(a.releases.missed_in_loss, 2);
    }

    #[test]
    fn tasks_without_usable_timing_are_counted_but_not_accounted() {
        let mut h = moded_header();
        h.tasks[1].period_ns = 3 * MS; // does not divide the 10 ms hyperperiod
        let mut records = releases_only(1, [0, 0, 1]);
        records.extend(releases_only(0, [0]));
        records.push(TraceRecord::release(0, 7, 0, LogicalNs(0), MonoNs(0), 0, 1));
        let a = analyze(&h, &records);
        let f = &a.releases.tasks[1];
        assert_eq!((f.planned, f.seen, f.missed, f.duplicate), (0, 2, 0, 1));
        assert_eq!(
            f.unaccounted,
            Some(Unaccounted::PeriodDoesNotDivide {
                period_ns: 3 * MS,
                hyperperiod_ns: 10 * MS
            })
        );
        assert!(f
            .unaccounted
            .unwrap()
            .to_string()
            .contains("does not divide"));
        let unknown = a.releases.tasks.iter().find(|t| t.task == 7).unwrap();
        assert_eq!(unknown.name, "#7");
        assert_eq!(unknown.unaccounted, Some(Unaccounted::NoTiming));
        assert!(unknown
            .unaccounted
            .unwrap()
            .to_string()
            .contains("no timing"));
        // Indices no record and no header names get no row at all.
        assert!(!a.releases.tasks.iter().any(|t| t.task == 3));
        assert_eq!(a.releases.tasks.len(), a.tasks.len());
    }

    #[test]
    fn huge_job_indices_are_counted_without_walking_them() {
        // A damaged-but-checksummed record could name any job: the gap to it is one range,
        // computed, not enumerated.
        let records = releases_only(1, [0, u64::MAX - 1, u64::MAX]);
        let a = analyze(&moded_header(), &records);
        let f = &a.releases.tasks[1];
        assert_eq!(f.planned, u64::MAX);
        assert_eq!(f.missed_jobs.len(), 1);
        assert_eq!(
            (f.missed_jobs[0].first, f.missed_jobs[0].last),
            (1, u64::MAX - 2)
        );
        // A switch at a huge cycle neither overflows nor hangs.
        let mut records = releases_only(1, [0, 1]);
        records.push(TraceRecord::mode_switch(
            0,
            u64::MAX,
            LogicalNs(0),
            MonoNs(0),
            0,
            1,
        ));
        assert_eq!(
            analyze(&moded_header(), &records).releases.tasks[1].planned,
            2
        );
    }

    #[test]
    fn doubtful_mode_records_are_noted() {
        let mut records = releases_only(1, 0..8);
        records.push(TraceRecord::mode_switch(
            0,
            2,
            LogicalNs(20 * MS),
            MonoNs(20 * MS + 1),
            1,
            0,
        ));
        records.push(TraceRecord::mode_switch(
            1,
            2,
            LogicalNs(20 * MS),
            MonoNs(20 * MS + 2),
            1,
            5,
        ));
        let a = analyze(&moded_header(), &records);
        let notes = a.releases.notes.join("\n");
        assert!(
            notes.contains("cycle 2: the mode switch records disagree"),
            "{notes}"
        );
        assert!(notes.contains("default mode is `drive`"), "{notes}");
        // Cycles 0..=1 are taken to be parked (the first switch leaves it): no filter owed.
        assert_eq!(a.releases.tasks[1].planned, 4);
        assert_eq!(a.releases.tasks[1].unplanned, 4);
    }
}

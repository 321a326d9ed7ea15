//! Per-task figures: release lateness, execution time, deadline misses, overruns, skips.
//!
//! Owns: which tasks get a row ([`MAX_UNDECLARED_TASK_ROWS`]), [`TaskFigures`] and the
//! attribution of each skip, overrun and miss ([`MissAttribution`]). It must never follow
//! data between tasks (that is `chains`) nor account releases against the plan (that is
//! `releases`).
//!
//! * Release lateness = `Release.time_ns - (epoch_ns + window_start_ns)`, for every released
//!   job that was not skipped.
//! * Deadline miss = `End.time_ns > epoch_ns + logical release + let_ns` (the LET deadline),
//!   the same test the dispatcher makes. Its attribution is the job's `Miss` record's; a miss
//!   without one (an older file, a lost record) is counted as not attributed.

use takt::trace::TraceHeader;

use super::jobs::{jobs_of, Job};
use super::quantiles::{quantiles, Quantiles};
use super::task_name;

/// The figures of one task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskFigures {
    pub task: u32,
    pub name: String,
    /// From the header; `None` for a task index the header does not describe.
    pub core: Option<u32>,
    pub period_ns: Option<u64>,
    pub budget_ns: Option<u64>,
    pub let_ns: Option<u64>,
    /// Jobs seen (released, skipped or partly recorded).
    pub jobs: u64,
    /// Jobs with both `Start` and `End`.
    pub executed: u64,
    pub skips: u64,
    pub overruns: u64,
    pub deadline_misses: u64,
    /// Who caused the skips, overruns and deadline misses above.
    pub attribution: MissAttribution,
    /// The jobs that reported a fault (`Fault` records; none in files before format 4).
    pub faults: FaultFigures,
    /// Jobs neither skipped nor complete: their records were lost or cut off.
    pub incomplete: u64,
    pub lateness_samples_ns: Vec<u64>,
    pub execution_samples_ns: Vec<u64>,
    /// Per executed job: time off the CPU while it ran (0 in files before format 3).
    pub off_cpu_samples_ns: Vec<u64>,
    pub lateness: Option<Quantiles>,
    pub execution: Option<Quantiles>,
    pub off_cpu: Option<Quantiles>,
}

/// A task's fault reports: jobs with a `Fault` record, their reports, and the codes of the
/// first and the last such job (in job order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultFigures {
    pub jobs: u64,
    pub reports: u64,
    pub first_code: Option<u16>,
    pub last_code: Option<u16>,
}

impl FaultFigures {
    fn add_job(&mut self, code: u16, reports: u64) {
        self.jobs += 1;
        self.reports = self.reports.saturating_add(reports);
        self.first_code.get_or_insert(code);
        self.last_code = Some(code);
    }
}

/// The skips, overruns and deadline misses of a task by who caused them. Each of them is
/// in exactly one of `platform`, `takt` and `unattributed`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MissAttribution {
    /// The job's CPU time fit; the excess was time off the CPU or a late wake-up.
    pub platform: MissCounts,
    /// The task used more CPU than its budget, or takt's dispatching made it late.
    pub takt: MissCounts,
    /// No attribution recorded (files before trace format 3, lost `Miss` records).
    pub unattributed: MissCounts,
}

/// Counts of one attribution class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MissCounts {
    pub skips: u64,
    pub overruns: u64,
    pub deadline_misses: u64,
}

impl MissCounts {
    pub fn total(&self) -> u64 {
        self.skips + self.overruns + self.deadline_misses
    }
}

impl MissAttribution {
    /// The class a record's attribution code names.
    pub(crate) fn class(&mut self, code: u16) -> &mut MissCounts {
        match takt::dispatch::Attribution::from_code(code) {
            Some(takt::dispatch::Attribution::Platform) => &mut self.platform,
            Some(takt::dispatch::Attribution::Takt) => &mut self.takt,
            None => &mut self.unattributed,
        }
    }
    /// Adds another task's (or file's) counts.
    pub fn add(&mut self, o: &MissAttribution) {
        for (a, b) in [
            (&mut self.platform, &o.platform),
            (&mut self.takt, &o.takt),
            (&mut self.unattributed, &o.unattributed),
        ] {
            a.skips += b.skips;
            a.overruns += b.overruns;
            a.deadline_misses += b.deadline_misses;
        }
    }
}

/// Most task indices beyond the header's that get a row of their own. Records naming a task
/// the header lacks come only from a damaged or foreign trace; a hostile file could name
/// four billion of them, and a row each would exhaust memory and time.
pub const MAX_UNDECLARED_TASK_ROWS: usize = 256;

/// Which tasks get a row in the figures and in the release accounting.
pub(crate) struct TaskRows {
    /// Every task the header names (`0..n`), then the indices beyond it that records use,
    /// ascending, at most [`MAX_UNDECLARED_TASK_ROWS`] of them.
    pub(crate) tasks: Vec<u32>,
    /// Said when undeclared indices were left without a row.
    pub(crate) note: Option<String>,
}

pub(crate) fn task_rows(header: &TraceHeader, jobs: &[Job]) -> TaskRows {
    let declared = header.task_names.len().max(header.tasks.len());
    // A header holds at most MAX_HEADER_BYTES, so `declared` is far below u32::MAX.
    let declared = u32::try_from(declared).unwrap_or(u32::MAX);
    let mut tasks: Vec<u32> = (0..declared).collect();
    let mut undeclared: Vec<u32> = jobs
        .iter()
        .map(|j| j.task)
        .filter(|&t| t >= declared)
        .collect();
    // `jobs` is sorted by task, so equal indices are adjacent.
    undeclared.dedup();
    let mut note = None;
    if undeclared.len() > MAX_UNDECLARED_TASK_ROWS {
        let omitted = &undeclared[MAX_UNDECLARED_TASK_ROWS..];
        let omitted_jobs = jobs.iter().filter(|j| j.task >= omitted[0]).count();
        note = Some(format!(
            "records name {} task indices the trace header lacks; the first {MAX_UNDECLARED_TASK_ROWS} get a row, the other {} (task #{} and up, {omitted_jobs} jobs) are left out",
            undeclared.len(),
            omitted.len(),
            omitted[0]
        ));
        undeclared.truncate(MAX_UNDECLARED_TASK_ROWS);
    }
    tasks.extend(undeclared);
    TaskRows { tasks, note }
}

pub(crate) fn task_figures(header: &TraceHeader, jobs: &[Job], rows: &[u32]) -> Vec<TaskFigures> {
    let mut out: Vec<TaskFigures> = Vec::with_capacity(rows.len());
    for &task in rows {
        let mine = jobs_of(jobs, task);
        let info = header.tasks.get(task as usize);
        let let_ns = info.map(|i| i.let_ns);
        let mut f = TaskFigures {
            task,
            name: task_name(header, task),
            core: info.map(|i| i.core),
            period_ns: info.map(|i| i.period_ns),
            budget_ns: info.map(|i| i.budget_ns),
            let_ns,
            jobs: mine.len() as u64,
            executed: 0,
            skips: 0,
            overruns: 0,
            deadline_misses: 0,
            attribution: MissAttribution::default(),
            faults: FaultFigures::default(),
            incomplete: 0,
            lateness_samples_ns: Vec::new(),
            execution_samples_ns: Vec::new(),
            off_cpu_samples_ns: Vec::new(),
            lateness: None,
            execution: None,
            off_cpu: None,
        };
        for j in mine {
            if let Some((code, reports)) = j.fault {
                f.faults.add_job(code, reports);
            }
            if j.skipped {
                f.skips += 1;
                f.attribution.class(j.skip_attribution).skips += 1;
                continue;
            }
            if let (Some(at), Some(window)) = (j.released_at_ns, j.window_start_ns) {
                let planned = header.epoch_ns.saturating_add(window);
                f.lateness_samples_ns.push(at.saturating_sub(planned));
            }
            if let Some((_, _, code)) = j.overrun {
                f.overruns += 1;
                f.attribution.class(code).overruns += 1;
            }
            if !j.executed() {
                f.incomplete += 1;
                continue;
            }
            f.executed += 1;
            if let Some(e) = j.execution_ns {
                f.execution_samples_ns.push(e);
            }
            if let Some(off) = j.off_cpu_ns {
                f.off_cpu_samples_ns.push(off);
            }
            if let (Some(end), Some(let_ns)) = (j.end_ns, let_ns) {
                let deadline = header
                    .epoch_ns
                    .saturating_add(j.release_ns)
                    .saturating_add(let_ns);
                if end > deadline {
                    f.deadline_misses += 1;
                    f.attribution
                        .class(j.miss.map_or(0, |(_, _, code)| code))
                        .deadline_misses += 1;
                }
            }
        }
        f.lateness = quantiles(&f.lateness_samples_ns);
        f.execution = quantiles(&f.execution_samples_ns);
        f.off_cpu = quantiles(&f.off_cpu_samples_ns);
        out.push(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze;
    use crate::analysis::testkit::*;
    use takt::time::{LogicalNs, MonoNs};
    use takt::trace::TraceRecord;

    #[test]
    fn fault_records_are_counted_per_task_with_the_first_and_last_code() {
        let mut records = clean_run(2);
        let a = analyze(&header(), &records);
        assert!(
            a.tasks.iter().all(|t| t.faults == FaultFigures::default()),
            "a file without Fault records (any format before 4) has no faults"
        );
        // Filter jobs 3 and 1 report faults (out of order in the file: job order counts).
        records.push(TraceRecord::fault(
            1,
            1,
            3,
            LogicalNs(16 * MS),
            MonoNs(17 * MS),
            9,
            1,
        ));
        records.push(TraceRecord::fault(
            1,
            1,
            1,
            LogicalNs(6 * MS),
            MonoNs(7 * MS),
            4,
            2,
        ));
        let a = analyze(&header(), &records);
        assert_eq!(
            a.tasks[1].faults,
            FaultFigures {
                jobs: 2,
                reports: 3,
                first_code: Some(4),
                last_code: Some(9),
            }
        );
        assert_eq!(a.tasks[0].faults, FaultFigures::default());
    }

    #[test]
    fn task_figures_count_and_measure() {
        let a = analyze(&header(), &clean_run(4));
        let filter = &a.tasks[1];
        assert_eq!(filter.name, "filter");
        assert_eq!(
            (
                filter.jobs,
                filter.executed,
                filter.skips,
                filter.overruns,
                filter.deadline_misses
            ),
            (8, 8, 0, 0, 0)
        );
        let late = filter.lateness.unwrap();
        assert_eq!((late.min_ns, late.max_ns, late.count), (10, 10, 8));
        let exec = filter.execution.unwrap();
        assert_eq!((exec.min_ns, exec.p50_ns, exec.max_ns), (100, 100, 100));
        let sensor = &a.tasks[0];
        assert_eq!(sensor.lateness.unwrap().max_ns, 0);
        assert_eq!(sensor.core, Some(0));
    }

    #[test]
    fn deadline_misses_overruns_skips_and_cut_off_jobs_are_counted() {
        let mut records = clean_run(2);
        // Filter job 1 (release 6 ms, LET deadline 7 ms) ends at 7 ms + 1: a miss and an overrun.
        for r in records.iter_mut().filter(|r| r.task == 1 && r.job == 1) {
            if r.kind().ok() == Some(takt::trace::EventKind::End) {
                r.time_ns = 7 * MS + 1;
                r.a = MS - 9;
            }
        }
        // The task itself ran over its budget (takt's) and so missed its deadline (takt's).
        records.push(TraceRecord::overrun(
            1,
            1,
            1,
            LogicalNs(6 * MS),
            MonoNs(7 * MS + 1),
            MS - 9,
            MS / 2,
            2,
        ));
        records.push(TraceRecord::miss(
            1,
            1,
            1,
            LogicalNs(6 * MS),
            MonoNs(7 * MS + 1),
            1,
            0,
            2,
        ));
        // Sensor job 2 is skipped after an overrun the platform caused; filter job 4 is
        // released and then the trace ends.
        records.push(TraceRecord::release(
            0,
            0,
            2,
            LogicalNs(20 * MS),
            MonoNs(20 * MS),
            20 * MS,
            MS,
        ));
        records.push(TraceRecord::skip(
            0,
            0,
            2,
            LogicalNs(20 * MS),
            MonoNs(20 * MS),
            1,
        ));
        records.push(TraceRecord::release(
            1,
            1,
            4,
            LogicalNs(21 * MS),
            MonoNs(21 * MS + 5),
            21 * MS,
            MS / 2,
        ));
        let a = analyze(&header(), &records);
        let filter = &a.tasks[1];
        assert_eq!(
            (
                filter.jobs,
                filter.executed,
                filter.overruns,
                filter.deadline_misses,
                filter.incomplete
            ),
            (5, 4, 1, 1, 1)
        );
        assert_eq!(filter.lateness.unwrap().count, 5);
        let sensor = &a.tasks[0];
        assert_eq!((sensor.jobs, sensor.executed, sensor.skips), (3, 2, 1));
        // Each miss is counted in the class its record names.
        assert_eq!(
            (
                filter.attribution.takt.overruns,
                filter.attribution.takt.deadline_misses
            ),
            (1, 1)
        );
        assert_eq!(filter.attribution.platform.total(), 0);
        assert_eq!(sensor.attribution.platform.skips, 1);
        assert_eq!(sensor.attribution.takt.total(), 0);
        // A skipped job has no lateness sample (the dispatcher measures none either).
        assert_eq!(sensor.lateness.unwrap().count, 2);
    }

    #[test]
    fn records_naming_tasks_the_header_lacks_get_their_own_row() {
        let mut records = clean_run(1);
        records.push(TraceRecord::release(0, 5, 0, LogicalNs(0), MonoNs(0), 0, 1));
        let a = analyze(&header(), &records);
        // The header's two tasks, then task 5; indices nobody uses get no row.
        let rows: Vec<u32> = a.tasks.iter().map(|t| t.task).collect();
        assert_eq!(rows, vec![0, 1, 5]);
        assert_eq!(a.tasks[2].name, "#5");
        assert_eq!(a.tasks[2].core, None);
        assert_eq!(a.tasks[2].jobs, 1);
        let releases: Vec<u32> = a.releases.tasks.iter().map(|t| t.task).collect();
        assert_eq!(releases, rows);
    }

    #[test]
    fn a_record_naming_a_huge_task_index_adds_one_row_not_millions() {
        // A checksummed record could carry any task index; before, every index up to it got
        // a row (here five million of them).
        let mut records = clean_run(1);
        records.push(TraceRecord::release(
            0,
            5_000_000,
            0,
            LogicalNs(0),
            MonoNs(0),
            0,
            1,
        ));
        let a = analyze(&header(), &records);
        assert_eq!(a.tasks.len(), 3);
        assert_eq!(a.releases.tasks.len(), 3);
        assert_eq!(a.tasks[2].name, "#5000000");
        assert!(a.releases.notes.is_empty(), "{:?}", a.releases.notes);
    }

    #[test]
    fn undeclared_task_rows_are_capped_and_the_rest_is_noted() {
        let mut records = clean_run(1);
        for t in 0..1000u32 {
            records.push(TraceRecord::release(
                0,
                10 + t * 7,
                0,
                LogicalNs(0),
                MonoNs(0),
                0,
                1,
            ));
        }
        let a = analyze(&header(), &records);
        assert_eq!(a.tasks.len(), 2 + MAX_UNDECLARED_TASK_ROWS);
        assert_eq!(a.releases.tasks.len(), a.tasks.len());
        let note = a
            .releases
            .notes
            .iter()
            .find(|n| n.contains("left out"))
            .expect("a note says which undeclared tasks were left out");
        assert!(note.contains("1000 task indices"), "{note}");
        assert!(note.contains("744 jobs"), "{note}");
    }
}

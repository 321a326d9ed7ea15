//! Pure trace analysis: records in, figures out.
//!
//! Owns: rebuilding jobs from the dispatcher's records ([`Job`]), the per-task figures
//! (release lateness, execution time, deadline misses, overruns, skips), the measured data
//! age and reaction time of every declared chain (by following sample sequence numbers),
//! the de-duplicated mode switches, and the quantiles of all of them. It must never do I/O,
//! read a clock or print: the verbs in `report`, `export` and `plot` do that with what it
//! returns, and its tests feed it hand-made records.
//!
//! # What the records say (see `takt::dispatch`, function `job`)
//!
//! Per job, all with the task, the job index and `logical_ns` = the logical release since
//! the epoch: `Release` (`time_ns` = actual wake-up, `a` = planned window start in logical
//! ns since the epoch, `b` = budget), then either `Skip` and nothing else, or `Start`, one
//! `Read`/`Publish` per port the job used, `End` (`a` = execution ns, `b` = off-CPU ns),
//! `Miss` if it ended after its LET deadline and `Overrun` if the job ran over its budget.
//! `Skip`, `Overrun` and `Miss` carry in `aux` who caused them (1 platform, 2 takt/task, 0
//! or anything else: not attributed, as in files before trace format 3). `ModeSwitch` records carry the hyperperiod cycle in `job` and
//! may come once per core for the same switch.
//!
//! # Definitions
//!
//! * Release lateness = `Release.time_ns - (epoch_ns + window_start_ns)`, for every released
//!   job that was not skipped.
//! * Deadline miss = `End.time_ns > epoch_ns + logical release + let_ns` (the LET deadline),
//!   the same test the dispatcher makes. Its attribution is the job's `Miss` record's; a miss
//!   without one (an older file, a lost record) is counted as not attributed.
//! * Data age and reaction time use exactly the definitions of `takt::plan::ChainBound`, in
//!   logical time, so "measured <= bound" is meaningful. A job's *origin* is found by
//!   following the chain backwards: the last task's job read sample `seq` on the chain's last
//!   port; the `Publish` of that `(port, seq)` by the previous chain task names the producing
//!   job; its `Read` on the previous port names the next sample; and so on to a job of the
//!   first task. Data age of a last-task job `J` = LET deadline of `J` - logical release of
//!   its origin. Reaction time for a first-task job `j` = LET deadline of the first last-task
//!   job whose origin is `j` or later - logical release of job `j - 1`.
//! * A chain instance whose walk meets a read of "no sample" (sequence 0, the start-up before
//!   data has flowed) has no origin and is counted as `no_data`; one whose walk meets a
//!   missing record (lost in a full ring, cut off by damage) is counted as `unknown` and never
//!   guessed. A reaction time is only measured when every last-task job between the previous
//!   known origin and the answering job is known and no records were lost in between.
//!
//! # Releases
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
//!
//! # Quantiles
//!
//! `min` and `max` are exact. `p50` and `p99` come from an HDR histogram with three
//! significant digits (within 0.1% of the exact value) and are clamped into `[min, max]`, so
//! a p99 never reads above the largest sample (which would fake a bound violation).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hdrhistogram::Histogram;
use takt::trace::{ClockKind, EventKind, TraceEvent, TraceHeader, TraceRecord, NO_TASK};

/// Significant decimal digits of the HDR histograms behind p50 and p99.
const HDR_SIGFIG: u8 = 3;

/// min/p50/p99/max of a set of samples, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantiles {
    pub count: u64,
    pub min_ns: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

/// The quantiles of `samples`, or `None` when there are none. See the module docs for
/// their precision.
pub fn quantiles(samples: &[u64]) -> Option<Quantiles> {
    let min_ns = *samples.iter().min()?;
    let max_ns = *samples.iter().max()?;
    // Sized for the exact maximum, so every sample fits without resizing. HDR tracks values
    // up to 2^63 - 1; a larger one (no real duration) is clamped there, and the clamp into
    // [min, max] below undoes the effect on the reported figures. Construction only fails
    // for bounds outside that range; the nearest-rank quantiles of the sorted samples are
    // the exact fallback.
    let high = max_ns.clamp(2, u64::MAX / 2);
    let (p50_ns, p99_ns) = match Histogram::<u64>::new_with_bounds(1, high, HDR_SIGFIG) {
        Ok(mut h) => {
            for &v in samples {
                h.saturating_record(v);
            }
            (h.value_at_quantile(0.50), h.value_at_quantile(0.99))
        }
        Err(_) => {
            let mut sorted = samples.to_vec();
            sorted.sort_unstable();
            (nearest_rank(&sorted, 0.50), nearest_rank(&sorted, 0.99))
        }
    };
    Some(Quantiles {
        count: samples.len() as u64,
        min_ns,
        p50_ns: p50_ns.clamp(min_ns, max_ns),
        p99_ns: p99_ns.clamp(min_ns, max_ns),
        max_ns,
    })
}

/// The nearest-rank quantile `q` of non-empty sorted samples.
fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

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

// --- fault reports (issue #11.5): `Fault` records per task ---
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
// --- end fault reports ---

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
    fn class(&mut self, code: u16) -> &mut MissCounts {
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

/// How a chain instance (one job of the chain's last task) traces back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The first task's job whose data it carries, with that job's logical release.
    Job { job: u64, release_ns: u64 },
    /// A link read "no sample" (start-up): the instance carries no first-task data yet.
    NoData,
    /// A record on the way is missing; the instance is not measured.
    Unknown,
}

/// The measured figures of one declared chain next to the plan's bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainFigures {
    pub name: String,
    pub tasks: Vec<u32>,
    pub ports: Vec<u16>,
    /// Why the chain could not be measured at all (malformed declaration), if so.
    pub invalid: Option<String>,
    /// Last-task jobs that executed (each is one instance).
    pub instances: u64,
    /// Instances without an origin yet (start-up).
    pub no_data: u64,
    /// Instances left unmeasured because a record on the way back was missing.
    pub unknown: u64,
    /// First-task jobs whose reaction time was left unmeasured because a last-task job that
    /// might have answered them is unknown, or records were lost in between.
    pub reaction_unknown: u64,
    pub data_age_samples_ns: Vec<u64>,
    pub reaction_samples_ns: Vec<u64>,
    pub data_age: Option<Quantiles>,
    pub reaction: Option<Quantiles>,
    /// The plan's bounds; `None` when the header says 0 (no mode runs the whole chain).
    pub bound_data_age_ns: Option<u64>,
    pub bound_reaction_ns: Option<u64>,
    pub exceeds_data_age: bool,
    pub exceeds_reaction: bool,
}

impl ChainFigures {
    /// Whether any measured figure is above its bound.
    pub fn exceeds_bound(&self) -> bool {
        self.exceeds_data_age || self.exceeds_reaction
    }
}

/// One mode switch, once, however many cores recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModeSwitch {
    /// The hyperperiod cycle the new mode starts with.
    pub cycle: u64,
    /// Logical time of the boundary, ns since the epoch.
    pub at_ns: u64,
    /// Earliest physical time a core recorded it.
    pub time_ns: u64,
    pub from_mode: u64,
    pub to_mode: u64,
    pub from_name: String,
    pub to_name: String,
    /// The cores that recorded it, ascending.
    pub cores: Vec<u8>,
}

/// A span of physical time in which records were lost (from a `Dropped` marker).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossWindow {
    pub core: u8,
    pub count: u64,
    pub first_ns: u64,
    pub last_ns: u64,
}

/// Everything the verbs print, export or plot.
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
    /// Every task's releases against the plan (see the module docs).
    pub releases: Releases,
}

#[cfg(test)]
impl Analysis {
    /// The job `(task, job)`, if recorded.
    pub fn job(&self, task: u32, job: u64) -> Option<&Job> {
        find_job(&self.jobs, task, job)
    }
}

fn find_job(jobs: &[Job], task: u32, job: u64) -> Option<&Job> {
    jobs.binary_search_by(|j| (j.task, j.job).cmp(&(task, job)))
        .ok()
        .map(|i| &jobs[i])
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
    let jobs = jobs(records);
    let losses = loss_windows(records);
    let rows = task_rows(header, &jobs);
    let tasks = task_figures(header, &jobs, &rows.tasks);
    let lost_spans = LostSpans::new(&losses);
    let chains = header
        .chains
        .iter()
        .map(|c| chain_figures(header, c, &jobs, &lost_spans))
        .collect();
    let switches = mode_switches(header, records);
    let mut releases = releases(header, records, &switches, &losses, &rows.tasks);
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

fn loss_windows(records: &[TraceRecord]) -> Vec<LossWindow> {
    records
        .iter()
        .filter_map(|r| match r.event() {
            Ok(TraceEvent::Dropped {
                count,
                last_lost_ns,
            }) => Some(LossWindow {
                core: r.core,
                count,
                first_ns: r.time_ns,
                last_ns: last_lost_ns.max(r.time_ns),
            }),
            _ => None,
        })
        .collect()
}

/// Most task indices beyond the header's that get a row of their own. Records naming a task
/// the header lacks come only from a damaged or foreign trace; a hostile file could name
/// four billion of them, and a row each would exhaust memory and time.
pub const MAX_UNDECLARED_TASK_ROWS: usize = 256;

/// Which tasks get a row in the figures and in the release accounting.
struct TaskRows {
    /// Every task the header names (`0..n`), then the indices beyond it that records use,
    /// ascending, at most [`MAX_UNDECLARED_TASK_ROWS`] of them.
    tasks: Vec<u32>,
    /// Said when undeclared indices were left without a row.
    note: Option<String>,
}

fn task_rows(header: &TraceHeader, jobs: &[Job]) -> TaskRows {
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

/// The jobs of `task` in `jobs` (sorted by `(task, job)`).
fn jobs_of(jobs: &[Job], task: u32) -> &[Job] {
    let from = jobs.partition_point(|j| j.task < task);
    let to = jobs.partition_point(|j| j.task <= task);
    &jobs[from..to]
}

fn task_figures(header: &TraceHeader, jobs: &[Job], rows: &[u32]) -> Vec<TaskFigures> {
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

/// Samples of one chain link: `(port, seq)` -> every `(producer job, visible_at_ns)` that
/// published it (more than one only if a restarted writer reused sequence numbers), sorted
/// by `visible_at_ns` (stable, so equal times keep record order) once the index is built.
type SampleIndex = HashMap<(u16, u64), Vec<(u64, u64)>>;

/// Finds the producer of sample `(port, seq)` among `producer_task`'s jobs: the one whose
/// sample was visible at `read_at_ns`, the latest such if a restart reused sequence numbers
/// (of equal times, the last recorded). A binary search, so a file that repeats one sample
/// many times costs a logarithm per read, not a pass.
fn producer_of(index: &SampleIndex, port: u16, seq: u64, read_at_ns: u64) -> Option<u64> {
    let candidates = index.get(&(port, seq))?;
    let visible = candidates.partition_point(|(_, at)| *at <= read_at_ns);
    visible.checked_sub(1).map(|i| candidates[i].0)
}

/// The time ranges where some ring lost records, merged and ascending, so "was anything
/// lost between two instants" takes a binary search instead of a pass over every loss.
struct LostSpans(Vec<(u64, u64)>);

impl LostSpans {
    fn new(losses: &[LossWindow]) -> Self {
        let mut ranges: Vec<(u64, u64)> = losses
            .iter()
            .map(|w| (w.first_ns.min(w.last_ns), w.first_ns.max(w.last_ns)))
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        LostSpans(merged)
    }

    /// Whether a loss overlaps `[from, to]` (both inclusive).
    fn any_between(&self, from: u64, to: u64) -> bool {
        // The first merged range that does not end before `from`; ranges are disjoint and
        // ascending, so it is the only candidate.
        let i = self.0.partition_point(|r| r.1 < from);
        self.0.get(i).is_some_and(|r| r.0 <= to)
    }
}

fn chain_figures(
    header: &TraceHeader,
    chain: &takt::trace::ChainInfo,
    jobs: &[Job],
    lost: &LostSpans,
) -> ChainFigures {
    let bound = |ns: u64| (ns > 0).then_some(ns);
    let mut f = ChainFigures {
        name: chain.name.clone(),
        tasks: chain.tasks.clone(),
        ports: chain.ports.clone(),
        invalid: None,
        instances: 0,
        no_data: 0,
        unknown: 0,
        reaction_unknown: 0,
        data_age_samples_ns: Vec::new(),
        reaction_samples_ns: Vec::new(),
        data_age: None,
        reaction: None,
        bound_data_age_ns: bound(chain.max_data_age_ns),
        bound_reaction_ns: bound(chain.max_reaction_ns),
        exceeds_data_age: false,
        exceeds_reaction: false,
    };
    let (Some(&first_task), Some(&last_task)) = (chain.tasks.first(), chain.tasks.last()) else {
        f.invalid = Some("the chain names no task".into());
        return f;
    };
    if chain.ports.len() + 1 != chain.tasks.len() {
        f.invalid = Some(format!(
            "the chain has {} tasks but {} ports; it needs one port between each pair of consecutive tasks",
            chain.tasks.len(),
            chain.ports.len()
        ));
        return f;
    }
    let Some(last_let_ns) = header.tasks.get(last_task as usize).map(|t| t.let_ns) else {
        f.invalid = Some(format!(
            "its last task #{last_task} has no timing in the trace header"
        ));
        return f;
    };

    // The samples each chain link's producer published.
    let mut index: Vec<SampleIndex> = Vec::new();
    for (i, &port) in chain.ports.iter().enumerate() {
        let producer = chain.tasks[i];
        let mut map = SampleIndex::new();
        for j in jobs_of(jobs, producer) {
            for p in j.publishes.iter().filter(|p| p.port == port && p.seq != 0) {
                map.entry((port, p.seq))
                    .or_default()
                    .push((j.job, p.visible_at_ns));
            }
        }
        for published in map.values_mut() {
            published.sort_by_key(|&(_, visible)| visible);
        }
        index.push(map);
    }

    // Walk back from every executed last-task job.
    let origin_of = |consumer: &Job| -> Origin {
        let mut job = consumer;
        for link in (0..chain.ports.len()).rev() {
            let port = chain.ports[link];
            let Some(seq) = job.read_seq(port) else {
                return Origin::Unknown;
            };
            if seq == 0 {
                return Origin::NoData;
            }
            let producer_task = chain.tasks[link];
            let Some(p) = producer_of(&index[link], port, seq, job.release_ns) else {
                return Origin::Unknown;
            };
            let Some(pj) = find_job(jobs, producer_task, p) else {
                return Origin::Unknown;
            };
            job = pj;
        }
        Origin::Job {
            job: job.job,
            release_ns: job.release_ns,
        }
    };

    // Last-task jobs in job order with their origin. Skipped jobs produce nothing and are
    // no instance; jobs cut off before their End are the end of the record, not a result.
    let instances: Vec<(&Job, Origin)> = jobs_of(jobs, last_task)
        .iter()
        .filter(|j| !j.skipped && j.executed())
        .map(|j| {
            // A one-task chain is its own origin.
            let origin = if chain.ports.is_empty() {
                Origin::Job {
                    job: j.job,
                    release_ns: j.release_ns,
                }
            } else {
                origin_of(j)
            };
            (j, origin)
        })
        .collect();
    let deadline_of = |j: &Job| j.release_ns.saturating_add(last_let_ns);

    for (j, origin) in &instances {
        f.instances += 1;
        match origin {
            Origin::Job { release_ns, .. } => f
                .data_age_samples_ns
                .push(deadline_of(j).saturating_sub(*release_ns)),
            Origin::NoData => f.no_data += 1,
            Origin::Unknown => f.unknown += 1,
        }
    }

    // Reaction: each instance with an origin newer than every earlier one answers all
    // first-task jobs in (newest earlier origin, its origin].
    let first_releases: BTreeMap<u64, u64> = jobs_of(jobs, first_task)
        .iter()
        .map(|j| (j.job, j.release_ns))
        .collect();
    let mut covered: Option<u64> = None;
    let mut uncertain = false;
    let mut previous_at_ns: Option<u64> = None;
    for (j, origin) in &instances {
        let at_ns = j.first_time_ns();
        match *origin {
            Origin::Unknown => uncertain = true,
            Origin::NoData => previous_at_ns = at_ns.or(previous_at_ns),
            Origin::Job { job: o, .. } => {
                if covered.is_some_and(|c| o <= c) {
                    previous_at_ns = at_ns.or(previous_at_ns);
                    continue;
                }
                let lost = lost.any_between(previous_at_ns.unwrap_or(0), at_ns.unwrap_or(u64::MAX));
                let lo = covered.map_or(0, |c| c + 1);
                for (&first_job, _) in first_releases.range(lo..=o) {
                    let Some(prev) = first_job.checked_sub(1) else {
                        continue;
                    };
                    let Some(&prev_release) = first_releases.get(&prev) else {
                        continue;
                    };
                    if uncertain || lost {
                        f.reaction_unknown += 1;
                    } else {
                        f.reaction_samples_ns
                            .push(deadline_of(j).saturating_sub(prev_release));
                    }
                }
                covered = Some(o);
                uncertain = false;
                previous_at_ns = at_ns.or(previous_at_ns);
            }
        }
    }

    f.data_age = quantiles(&f.data_age_samples_ns);
    f.reaction = quantiles(&f.reaction_samples_ns);
    f.exceeds_data_age =
        matches!((f.data_age, f.bound_data_age_ns), (Some(q), Some(b)) if q.max_ns > b);
    f.exceeds_reaction =
        matches!((f.reaction, f.bound_reaction_ns), (Some(q), Some(b)) if q.max_ns > b);
    f
}

fn mode_switches(header: &TraceHeader, records: &[TraceRecord]) -> Vec<ModeSwitch> {
    let mut by_key: BTreeMap<(u64, u64, u64), ModeSwitch> = BTreeMap::new();
    for r in records {
        let Ok(TraceEvent::ModeSwitch { from_mode, to_mode }) = r.event() else {
            continue;
        };
        let s = by_key
            .entry((r.job, from_mode, to_mode))
            .or_insert_with(|| ModeSwitch {
                cycle: r.job,
                at_ns: r.logical_ns,
                time_ns: r.time_ns,
                from_mode,
                to_mode,
                from_name: mode_name(header, from_mode),
                to_name: mode_name(header, to_mode),
                cores: Vec::new(),
            });
        s.time_ns = s.time_ns.min(r.time_ns);
        if !s.cores.contains(&r.core) {
            s.cores.push(r.core);
            s.cores.sort_unstable();
        }
    }
    by_key.into_values().collect()
}

// ---------------------------------------------------------------------------------------
// Release accounting
// ---------------------------------------------------------------------------------------

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
    pub unaccounted: Option<String>,
}

impl TaskReleases {
    /// The hyperperiod cycle of job `job`, when the timing is known.
    pub fn cycle_of(&self, job: u64) -> Option<u64> {
        self.jobs_per_cycle.map(|n| job / n)
    }
}

/// Every task's [`TaskReleases`] (same order and index as [`Analysis::tasks`]) and the
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
fn jobs_per_cycle(header: &TraceHeader, task: u32) -> Result<u64, String> {
    let Some(info) = header.tasks.get(task as usize) else {
        return Err("the trace header has no timing for it".into());
    };
    let h_ns = header.hyperperiod_ns;
    if info.period_ns == 0 || h_ns == 0 || !h_ns.is_multiple_of(info.period_ns) {
        return Err(format!(
            "its period ({} ns) does not divide the hyperperiod ({h_ns} ns) in the trace header",
            info.period_ns
        ));
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
fn releases(
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
    use takt::trace::{ChainInfo, TaskInfo};

    const MS: u64 = 1_000_000;

    /// Two tasks on two cores: `sensor` (period 10 ms, LET 2 ms) publishes port 0, which
    /// `filter` (period 5 ms, offset 1 ms, LET 1 ms) reads. Declared chain `s2f`.
    fn header() -> TraceHeader {
        let mut h = TraceHeader::new("unit", ClockKind::Sim);
        h.hyperperiod_ns = 10 * MS;
        h.task_names = vec!["sensor".into(), "filter".into()];
        h.topic_names = vec!["raw".into()];
        h.mode_names = vec!["drive".into(), "parked".into()];
        h.tasks = vec![
            TaskInfo {
                core: 0,
                period_ns: 10 * MS,
                offset_ns: 0,
                budget_ns: MS,
                let_ns: 2 * MS,
            },
            TaskInfo {
                core: 1,
                period_ns: 5 * MS,
                offset_ns: MS,
                budget_ns: MS / 2,
                let_ns: MS,
            },
        ];
        h.chains = vec![ChainInfo {
            name: "s2f".into(),
            tasks: vec![0, 1],
            ports: vec![0],
            max_data_age_ns: 12 * MS,
            max_reaction_ns: 17 * MS,
        }];
        h
    }

    /// The records of a clean run of `sensor_jobs` sensor jobs and twice as many filter
    /// jobs, exactly as the dispatcher orders them. Under LET filter job m reads the sample
    /// of sensor job floor((m - 1) / 2) (none for m = 0).
    fn clean_run(sensor_jobs: u64) -> Vec<TraceRecord> {
        let mut out = Vec::new();
        for k in 0..sensor_jobs {
            let r = 10 * MS * k;
            out.push(TraceRecord::release(0, 0, k, r, r, r, MS));
            out.push(TraceRecord::start(0, 0, k, r, r));
            out.push(TraceRecord::publish(
                0,
                0,
                k,
                r,
                r + 300_000,
                0,
                k + 1,
                r + 2 * MS,
            ));
            out.push(TraceRecord::end(0, 0, k, r, r + 300_000, 300_000, 0));
            for m in [2 * k, 2 * k + 1] {
                let rf = 5 * MS * m + MS;
                let seq = if m == 0 { 0 } else { (m - 1) / 2 + 1 };
                out.push(TraceRecord::release(1, 1, m, rf, rf + 10, rf, MS / 2));
                out.push(TraceRecord::start(1, 1, m, rf, rf + 10));
                out.push(TraceRecord::read(1, 1, m, rf, rf + 110, 0, seq));
                out.push(TraceRecord::end(1, 1, m, rf, rf + 110, 100, 0));
            }
        }
        out.sort_by_key(|r| r.time_ns);
        out
    }

    #[test]
    fn quantiles_are_exact_at_the_ends_and_clamped_inside() {
        assert_eq!(quantiles(&[]), None);
        let q = quantiles(&[12 * MS; 5]).unwrap();
        assert_eq!(
            (q.min_ns, q.p50_ns, q.p99_ns, q.max_ns),
            (12 * MS, 12 * MS, 12 * MS, 12 * MS)
        );
        assert_eq!(q.count, 5);
        let samples: Vec<u64> = (1..=1000).collect();
        let q = quantiles(&samples).unwrap();
        assert_eq!((q.min_ns, q.max_ns), (1, 1000));
        assert!((499..=501).contains(&q.p50_ns), "p50 {}", q.p50_ns);
        assert!((989..=991).contains(&q.p99_ns), "p99 {}", q.p99_ns);
        // A single outlier among 25 is the p99 (nearest rank 25 of 25), however large.
        let mut samples = vec![51_810u64; 24];
        samples.push(2_544_000);
        let q = quantiles(&samples).unwrap();
        assert_eq!((q.p99_ns, q.max_ns), (2_544_000, 2_544_000));
        assert!((51_810..=51_870).contains(&q.p50_ns), "p50 {}", q.p50_ns);
        // Extreme values neither fail nor leave [min, max].
        let q = quantiles(&[0, u64::MAX]).unwrap();
        assert_eq!((q.min_ns, q.max_ns), (0, u64::MAX));
        assert!(q.p50_ns <= q.p99_ns);
        // An awkward value whose HDR bucket reaches above it: never reported above max.
        let q = quantiles(&[7_000_001, 7_000_001, 7_000_001]).unwrap();
        assert_eq!((q.p50_ns, q.p99_ns), (7_000_001, 7_000_001));
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 0.5), 2);
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 0.99), 4);
    }

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
    fn fault_records_are_counted_per_task_with_the_first_and_last_code() {
        let mut records = clean_run(2);
        let a = analyze(&header(), &records);
        assert!(
            a.tasks.iter().all(|t| t.faults == FaultFigures::default()),
            "a file without Fault records (any format before 4) has no faults"
        );
        // Filter jobs 3 and 1 report faults (out of order in the file: job order counts).
        records.push(TraceRecord::fault(1, 1, 3, 16 * MS, 17 * MS, 9, 1));
        records.push(TraceRecord::fault(1, 1, 1, 6 * MS, 7 * MS, 4, 2));
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
            6 * MS,
            7 * MS + 1,
            MS - 9,
            MS / 2,
            2,
        ));
        records.push(TraceRecord::miss(1, 1, 1, 6 * MS, 7 * MS + 1, 1, 0, 2));
        // Sensor job 2 is skipped after an overrun the platform caused; filter job 4 is
        // released and then the trace ends.
        records.push(TraceRecord::release(0, 0, 2, 20 * MS, 20 * MS, 20 * MS, MS));
        records.push(TraceRecord::skip(0, 0, 2, 20 * MS, 20 * MS, 1));
        records.push(TraceRecord::release(
            1,
            1,
            4,
            21 * MS,
            21 * MS + 5,
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
    fn chains_are_followed_by_sequence_number() {
        let a = analyze(&header(), &clean_run(5));
        let c = &a.chains[0];
        assert_eq!(c.invalid, None);
        // 10 filter jobs: m = 0 has no data; odd m: age (5m + 2) - 10 (m-1)/2 = 7 ms; even m
        // >= 2: 12 ms.
        assert_eq!((c.instances, c.no_data, c.unknown), (10, 1, 0));
        let mut expected: Vec<u64> = (1..10u64)
            .map(|m| 5 * MS * m + 2 * MS - 10 * MS * ((m - 1) / 2))
            .collect();
        expected.sort_unstable();
        let mut got = c.data_age_samples_ns.clone();
        got.sort_unstable();
        assert_eq!(got, expected);
        let age = c.data_age.unwrap();
        assert_eq!((age.min_ns, age.max_ns), (7 * MS, 12 * MS));
        // Reaction for sensor job j >= 1: filter job 2j + 1 is the first with origin j; its
        // deadline 10j + 7 ms minus the release of j - 1 = 17 ms. Jobs 1..=4 are answered
        // (job 4 by filter job 9), job 0 has no predecessor.
        assert_eq!(c.reaction_samples_ns, vec![17 * MS; 4]);
        assert!(!c.exceeds_bound());
    }

    #[test]
    fn a_measurement_above_the_bound_is_flagged() {
        let mut h = header();
        h.chains[0].max_data_age_ns = 11 * MS;
        let c = &analyze(&h, &clean_run(3)).chains[0];
        assert!(c.exceeds_data_age && !c.exceeds_reaction && c.exceeds_bound());
        h.chains[0].max_data_age_ns = 0;
        let c = &analyze(&h, &clean_run(3)).chains[0];
        assert_eq!(c.bound_data_age_ns, None);
        assert!(!c.exceeds_data_age);
    }

    #[test]
    fn a_missing_publish_makes_instances_unknown_not_wrong() {
        // Sensor job 2's Publish (seq 3) was lost: filter jobs 5 and 6 read it.
        let records: Vec<TraceRecord> = clean_run(5)
            .into_iter()
            .filter(|r| {
                !(r.task == 0
                    && r.job == 2
                    && r.kind().ok() == Some(takt::trace::EventKind::Publish))
            })
            .collect();
        let c = &analyze(&header(), &records).chains[0];
        assert_eq!(
            (
                c.instances,
                c.no_data,
                c.unknown,
                c.data_age_samples_ns.len()
            ),
            (10, 1, 2, 7)
        );
        // Sensor jobs 2 and 3 might be answered by filter job 5 or 6, whose origins are
        // unknown, so their reaction is not measured; jobs 1 and 4 still are.
        assert_eq!(c.reaction_samples_ns, vec![17 * MS; 2]);
        assert_eq!(c.reaction_unknown, 2);
    }

    #[test]
    fn records_lost_in_a_ring_leave_reaction_unmeasured_across_the_loss() {
        // Filter job 5's records are gone entirely and a drop marker covers them.
        let mut records: Vec<TraceRecord> = clean_run(5)
            .into_iter()
            .filter(|r| !(r.task == 1 && r.job == 5))
            .collect();
        // Without the marker nothing shows the gap: sensor job 2 seems answered by filter
        // job 6 (deadline 32 ms - release of job 1 at 10 ms = 22 ms), above the real 17 ms.
        let blind = &analyze(&header(), &records).chains[0];
        assert_eq!(blind.reaction.unwrap().max_ns, 22 * MS);
        records.push(TraceRecord::dropped(1, 40, 4, 26 * MS, 26 * MS + 200));
        let a = analyze(&header(), &records);
        let c = &a.chains[0];
        // With it, sensor job 2's reaction is not measured rather than measured too long.
        assert_eq!(c.reaction_samples_ns, vec![17 * MS; 3]);
        assert_eq!((c.unknown, c.reaction_unknown), (0, 1));
        assert_eq!(a.losses.len(), 1);
    }

    #[test]
    fn a_sequence_reused_after_a_restart_picks_the_sample_visible_at_the_read() {
        let mut records = clean_run(3);
        // A restarted sensor publishes seq 1 again (job 40, visible at 402 ms); filter
        // job 1 at 6 ms must still trace back to sensor job 0.
        records.push(TraceRecord::release(
            0,
            0,
            40,
            400 * MS,
            400 * MS,
            400 * MS,
            MS,
        ));
        records.push(TraceRecord::start(0, 0, 40, 400 * MS, 400 * MS));
        records.push(TraceRecord::publish(
            0,
            0,
            40,
            400 * MS,
            400 * MS,
            0,
            1,
            402 * MS,
        ));
        records.push(TraceRecord::end(0, 0, 40, 400 * MS, 400 * MS, 1, 0));
        let a = analyze(&header(), &records);
        assert_eq!(a.chains[0].data_age.unwrap().max_ns, 12 * MS);
        assert_eq!(a.chains[0].data_age.unwrap().min_ns, 7 * MS);
    }

    #[test]
    fn malformed_chains_are_reported_not_followed() {
        let mut h = header();
        h.chains[0].ports.clear();
        let c = &analyze(&h, &clean_run(2)).chains[0];
        assert!(c
            .invalid
            .as_deref()
            .unwrap()
            .contains("2 tasks but 0 ports"));
        h.chains[0].tasks = vec![];
        assert!(analyze(&h, &clean_run(2)).chains[0].invalid.is_some());
        h.chains[0].tasks = vec![0, 9];
        h.chains[0].ports = vec![0];
        assert!(analyze(&h, &clean_run(2)).chains[0]
            .invalid
            .as_deref()
            .unwrap()
            .contains("#9"));
    }

    #[test]
    fn mode_switches_recorded_by_every_core_are_reported_once() {
        let mut records = clean_run(1);
        records.push(TraceRecord::mode_switch(1, 3, 30 * MS, 30 * MS + 7, 0, 1));
        records.push(TraceRecord::mode_switch(0, 3, 30 * MS, 30 * MS + 5, 0, 1));
        records.push(TraceRecord::mode_switch(0, 5, 50 * MS, 50 * MS + 5, 1, 7));
        let a = analyze(&header(), &records);
        assert_eq!(a.mode_switches.len(), 2);
        let s = &a.mode_switches[0];
        assert_eq!(
            (s.cycle, s.at_ns, s.time_ns, s.cores.clone()),
            (3, 30 * MS, 30 * MS + 5, vec![0, 1])
        );
        assert_eq!(
            (s.from_name.as_str(), s.to_name.as_str()),
            ("drive", "parked")
        );
        assert_eq!(a.mode_switches[1].to_name, "#7");
    }

    #[test]
    fn records_naming_tasks_the_header_lacks_get_their_own_row() {
        let mut records = clean_run(1);
        records.push(TraceRecord::release(0, 5, 0, 0, 0, 0, 1));
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
        records.push(TraceRecord::release(0, 5_000_000, 0, 0, 0, 0, 1));
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
            records.push(TraceRecord::release(0, 10 + t * 7, 0, 0, 0, 0, 1));
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

    #[test]
    fn lost_spans_answer_like_a_pass_over_every_loss() {
        use proptest::prelude::*;
        let window = (0u64..200, 0u64..40).prop_map(|(first, len)| LossWindow {
            core: 0,
            count: 1,
            first_ns: first,
            last_ns: first + len,
        });
        proptest!(ProptestConfig::with_cases(300), |(
            losses in prop::collection::vec(window, 0..12),
            from in 0u64..260,
            len in 0u64..60,
        )| {
            let to = from + len;
            let brute = losses.iter().any(|w| w.first_ns <= to && w.last_ns >= from);
            prop_assert_eq!(LostSpans::new(&losses).any_between(from, to), brute);
        });
    }

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
                let mut r = TraceRecord::release(core, task, job, time_ns, 0, a, b);
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
    // --- release accounting -------------------------------------------------------------

    /// `header()` (hyperperiod 10 ms: one sensor job and two filter jobs per cycle) with
    /// per-mode task sets: `drive` releases both, `parked` only the sensor.
    fn moded_header() -> TraceHeader {
        let mut h = header();
        h.mode_tasks = Some(takt::trace::file::ModeTasks {
            default_mode: 0,
            tasks: vec![vec![0, 1], vec![0]],
        });
        h
    }

    fn releases_only(task: u32, jobs: impl IntoIterator<Item = u64>) -> Vec<TraceRecord> {
        let period = if task == 0 { 10 * MS } else { 5 * MS };
        jobs.into_iter()
            .map(|j| {
                TraceRecord::release(task as u8, task, j, j * period, j * period, j * period, 1)
            })
            .collect()
    }

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
        records.push(TraceRecord::mode_switch(0, 2, 20 * MS, 20 * MS, 0, 1));
        records.push(TraceRecord::mode_switch(1, 2, 20 * MS, 20 * MS, 0, 1));
        records.push(TraceRecord::mode_switch(0, 4, 40 * MS, 40 * MS, 1, 0));
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
        records.push(TraceRecord::mode_switch(0, 2, 20 * MS, 20 * MS, 0, 1));
        records.push(TraceRecord::mode_switch(0, 4, 40 * MS, 40 * MS, 1, 0));
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
        records.push(TraceRecord::dropped(1, 10, 4, 21 * MS, 22 * MS));
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
        records.push(TraceRecord::release(0, 7, 0, 0, 0, 0, 1));
        let a = analyze(&h, &records);
        let f = &a.releases.tasks[1];
        assert_eq!((f.planned, f.seen, f.missed, f.duplicate), (0, 2, 0, 1));
        assert!(f
            .unaccounted
            .as_deref()
            .unwrap()
            .contains("does not divide"));
        let unknown = a.releases.tasks.iter().find(|t| t.task == 7).unwrap();
        assert_eq!(unknown.name, "#7");
        assert!(unknown
            .unaccounted
            .as_deref()
            .unwrap()
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
        records.push(TraceRecord::mode_switch(0, u64::MAX, 0, 0, 0, 1));
        assert_eq!(
            analyze(&moded_header(), &records).releases.tasks[1].planned,
            2
        );
    }

    #[test]
    fn doubtful_mode_records_are_noted() {
        let mut records = releases_only(1, 0..8);
        records.push(TraceRecord::mode_switch(0, 2, 20 * MS, 20 * MS + 1, 1, 0));
        records.push(TraceRecord::mode_switch(1, 2, 20 * MS, 20 * MS + 2, 1, 5));
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

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
//! `Read`/`Publish` per port the job used, `End` (`a` = execution ns) and `Overrun` if the
//! job ran over its budget. `ModeSwitch` records carry the hyperperiod cycle in `job` and
//! may come once per core for the same switch.
//!
//! # Definitions
//!
//! * Release lateness = `Release.time_ns - (epoch_ns + window_start_ns)`, for every released
//!   job that was not skipped.
//! * Deadline miss = `End.time_ns > epoch_ns + logical release + let_ns` (the LET deadline),
//!   the same test the dispatcher makes.
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
//! # Quantiles
//!
//! `min` and `max` are exact. `p50` and `p99` come from an HDR histogram with three
//! significant digits (within 0.1% of the exact value) and are clamped into `[min, max]`, so
//! a p99 never reads above the largest sample (which would fake a bound violation).

use std::collections::{BTreeMap, HashMap};

use hdrhistogram::Histogram;
use takt::trace::{ClockKind, TraceEvent, TraceHeader, TraceRecord, NO_TASK};

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
    /// `(execution_ns, budget_ns)` of an `Overrun` record.
    pub overrun: Option<(u64, u64)>,
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
            overrun: None,
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
            TraceEvent::End { execution_ns } => {
                job.end_ns = Some(r.time_ns);
                job.execution_ns = Some(execution_ns);
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
            } => job.overrun = Some((execution_ns, budget_ns)),
            TraceEvent::Skip => job.skipped = true,
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
    /// Jobs neither skipped nor complete: their records were lost or cut off.
    pub incomplete: u64,
    pub lateness_samples_ns: Vec<u64>,
    pub execution_samples_ns: Vec<u64>,
    pub lateness: Option<Quantiles>,
    pub execution: Option<Quantiles>,
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
    let tasks = task_figures(header, &jobs);
    let chains = header
        .chains
        .iter()
        .map(|c| chain_figures(header, c, &jobs, &losses))
        .collect();
    Analysis {
        epoch_ns: header.epoch_ns,
        hyperperiod_ns: header.hyperperiod_ns,
        clock: header.clock,
        mode_switches: mode_switches(header, records),
        jobs,
        tasks,
        chains,
        losses,
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

fn task_figures(header: &TraceHeader, jobs: &[Job]) -> Vec<TaskFigures> {
    // Every task the header names, plus any index the records use beyond it.
    let mut count = header.task_names.len().max(header.tasks.len()) as u64;
    if let Some(last) = jobs.last() {
        count = count.max(u64::from(last.task) + 1);
    }
    let mut out: Vec<TaskFigures> = Vec::new();
    let mut rest = jobs;
    for task in 0..count {
        // `count` is at most u32::MAX + 1 (a task index is a u32), so this cannot wrap.
        let task = task as u32;
        let n = rest.iter().take_while(|j| j.task == task).count();
        let (mine, tail) = rest.split_at(n);
        rest = tail;
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
            incomplete: 0,
            lateness_samples_ns: Vec::new(),
            execution_samples_ns: Vec::new(),
            lateness: None,
            execution: None,
        };
        for j in mine {
            if j.skipped {
                f.skips += 1;
                continue;
            }
            if let (Some(at), Some(window)) = (j.released_at_ns, j.window_start_ns) {
                let planned = header.epoch_ns.saturating_add(window);
                f.lateness_samples_ns.push(at.saturating_sub(planned));
            }
            if j.overrun.is_some() {
                f.overruns += 1;
            }
            if !j.executed() {
                f.incomplete += 1;
                continue;
            }
            f.executed += 1;
            if let Some(e) = j.execution_ns {
                f.execution_samples_ns.push(e);
            }
            if let (Some(end), Some(let_ns)) = (j.end_ns, let_ns) {
                let deadline = header
                    .epoch_ns
                    .saturating_add(j.release_ns)
                    .saturating_add(let_ns);
                if end > deadline {
                    f.deadline_misses += 1;
                }
            }
        }
        f.lateness = quantiles(&f.lateness_samples_ns);
        f.execution = quantiles(&f.execution_samples_ns);
        out.push(f);
    }
    out
}

/// Samples of one chain link: `(port, seq)` -> every `(producer job, visible_at_ns)` that
/// published it (more than one only if a restarted writer reused sequence numbers).
type SampleIndex = HashMap<(u16, u64), Vec<(u64, u64)>>;

/// Finds the producer of sample `(port, seq)` among `producer_task`'s jobs: the one whose
/// sample was visible at `read_at_ns`, the latest such if a restart reused sequence numbers.
fn producer_of(index: &SampleIndex, port: u16, seq: u64, read_at_ns: u64) -> Option<u64> {
    index
        .get(&(port, seq))?
        .iter()
        .filter(|(_, visible)| *visible <= read_at_ns)
        .max_by_key(|(_, visible)| *visible)
        .map(|&(job, _)| job)
}

fn chain_figures(
    header: &TraceHeader,
    chain: &takt::trace::ChainInfo,
    jobs: &[Job],
    losses: &[LossWindow],
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
        for j in jobs.iter().filter(|j| j.task == producer) {
            for p in j.publishes.iter().filter(|p| p.port == port && p.seq != 0) {
                map.entry((port, p.seq))
                    .or_default()
                    .push((j.job, p.visible_at_ns));
            }
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
    let instances: Vec<(&Job, Origin)> = jobs
        .iter()
        .filter(|j| j.task == last_task && !j.skipped && j.executed())
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
    let first_releases: BTreeMap<u64, u64> = jobs
        .iter()
        .filter(|j| j.task == first_task)
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
                let lost = losses.iter().any(|w| {
                    let from = previous_at_ns.unwrap_or(0);
                    let to = at_ns.unwrap_or(u64::MAX);
                    w.first_ns <= to && w.last_ns >= from
                });
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
            out.push(TraceRecord::end(0, 0, k, r, r + 300_000, 300_000));
            for m in [2 * k, 2 * k + 1] {
                let rf = 5 * MS * m + MS;
                let seq = if m == 0 { 0 } else { (m - 1) / 2 + 1 };
                out.push(TraceRecord::release(1, 1, m, rf, rf + 10, rf, MS / 2));
                out.push(TraceRecord::start(1, 1, m, rf, rf + 10));
                out.push(TraceRecord::read(1, 1, m, rf, rf + 110, 0, seq));
                out.push(TraceRecord::end(1, 1, m, rf, rf + 110, 100));
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
    fn deadline_misses_overruns_skips_and_cut_off_jobs_are_counted() {
        let mut records = clean_run(2);
        // Filter job 1 (release 6 ms, LET deadline 7 ms) ends at 7 ms + 1: a miss and an overrun.
        for r in records.iter_mut().filter(|r| r.task == 1 && r.job == 1) {
            if r.kind().ok() == Some(takt::trace::EventKind::End) {
                r.time_ns = 7 * MS + 1;
                r.a = MS - 9;
            }
        }
        records.push(TraceRecord::overrun(
            1,
            1,
            1,
            6 * MS,
            7 * MS + 1,
            MS - 9,
            MS / 2,
        ));
        // Sensor job 2 is skipped; filter job 4 is released and then the trace ends.
        records.push(TraceRecord::release(0, 0, 2, 20 * MS, 20 * MS, 20 * MS, MS));
        records.push(TraceRecord::skip(0, 0, 2, 20 * MS, 20 * MS));
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
        records.push(TraceRecord::end(0, 0, 40, 400 * MS, 400 * MS, 1));
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
        assert_eq!(a.tasks.len(), 6);
        assert_eq!(a.tasks[5].name, "#5");
        assert_eq!(a.tasks[5].core, None);
        assert_eq!(a.tasks[3].jobs, 0);
    }
}

//! The report of one run: every figure of the analyses in one typed, serializable value.
//!
//! Owns: [`Report`] and the JSON schema below, which `takt trace report FILE... --json`
//! prints (`serde_json::to_string_pretty`) and tools may read back ([`Report`] is also
//! `Deserialize`). It must never compute a figure itself (that is [`crate::analysis`]) nor
//! fail on a damaged file: the break is in the `break` fields. Any incompatible change of
//! the layout bumps [`FORMAT_VERSION`].
//!
//! ## Trace report JSON
//!
//! The report serializes to one JSON object. Every duration is an integer
//! in nanoseconds and says so in its name (`_ns`); a figure that could not be measured
//! (no samples) is `null`. `min`/`max` are exact; `p50`/`p99` come from an HDR histogram
//! with 3 significant digits (within 0.1%) and are clamped into `[min, max]`.
//!
//! ```text
//! {
//!   "format_version": 1,                 // bumped on any incompatible change
//!   "deployment": "acc",                 // app names of the files, joined with "+"
//!   "files": [{"path": "t.trc", "app": "acc", "records": 12345,
//!              "dropped_events": 0, "break": null | {...as below}}],
//!   "clock": "sim" | "real",             // simulated clock or CLOCK_MONOTONIC
//!   "epoch_ns": 0,                       // the epoch on that clock
//!   "hyperperiod_ns": 40000000,
//!   "tasks": [{
//!     "name": "radar", "index": 1,       // index = task id in the records
//!     "core": 0, "period_ns": 10000000, "budget_ns": 200000, "let_ns": 1000000,
//!     "jobs": 100,                       // jobs seen (released, skipped or partly recorded)
//!     "executed": 100,                   // with Start and End
//!     "skips": 0, "overruns": 0, "deadline_misses": 0,  // miss: End > LET deadline
//!     "attribution": {                   // who caused the skips, overruns and misses above
//!       "platform": {"skips": 0, "overruns": 0, "deadline_misses": 0},  // host stall, late wake-up
//!       "takt": {"skips": 0, "overruns": 0, "deadline_misses": 0},      // the task or takt itself
//!       "unattributed": {"skips": 0, "overruns": 0, "deadline_misses": 0} // trace format < 3
//!     },
//!     "faults": {"jobs": 0, "reports": 0,  // jobs that reported a fault, and every report
//!                "first_code": null, "last_code": null},  // codes of the first/last such job
//!     "off_cpu_ns_p99": 0, "off_cpu_ns_max": 0,  // time off the CPU during a job
//!     "incomplete": 0,                   // neither skipped nor complete (records lost or cut)
//!     "lateness_ns_min": 0, "lateness_ns_p50": 0, "lateness_ns_p99": 0, "lateness_ns_max": 0,
//!                                        // actual wake-up - planned window start
//!     "execution_ns_min": 900, "execution_ns_p50": 1000, "execution_ns_p99": 2100,
//!     "execution_ns_max": 30000,         // as measured by the dispatcher
//!     "releases": {                      // from the task's first to its last release, any file
//!       "planned": 100,                  // jobs the plan demanded there (its mode releases it)
//!       "seen": 100,                     // distinct jobs with a Release record (skipped too)
//!       "missed": 0,                     // planned, no Release record in any file
//!       "duplicate": 0,                  // jobs with more than one Release record
//!       "unplanned": 0,                  // seen in cycles whose mode does not release the task
//!       "missed_in_loss": 0,             // of missed: near records lost in a full ring
//!       "first_job": 0, "last_job": 99,  // the traced interval; null without releases
//!       "missed_jobs": [[40, 43]],       // inclusive job-index ranges
//!       "duplicate_jobs": [[44, 2]],     // [job, records naming it]
//!       "unplanned_jobs": [],            // inclusive job-index ranges
//!       "unaccounted": null | "why planned/missed cannot be computed for this task"
//!     }
//!   }],
//!   "chains": [{
//!     "name": "radar_to_brake",
//!     "tasks": ["radar", "perception", ...], "topics": ["radar_tracks", ...],
//!     "invalid": null | "why the declaration cannot be followed",
//!     "measured": {
//!       "instances": 100,                // executed jobs of the last task
//!       "no_data": 1,                    // instances at start-up, before data flowed
//!       "unknown": 0,                    // instances whose records were lost
//!       "data_age_samples": 99,
//!       "data_age_ns_min": .., "data_age_ns_p50": .., "data_age_ns_p99": .., "data_age_ns_max": ..,
//!       "reaction_samples": 98,
//!       "reaction_unknown": 0,           // first-task jobs whose reaction is not measurable
//!       "reaction_ns_min": .., "reaction_ns_p50": .., "reaction_ns_p99": .., "reaction_ns_max": ..
//!     },
//!     "bound": {"bound_data_age_ns": 8000000, "bound_reaction_ns": 18000000},
//!                                        // the plan's exact LET bounds; null = no mode runs the chain
//!     "exceeds_bound": false,            // exceeds_data_age || exceeds_reaction
//!     "exceeds_data_age": false,         // measured max > bound
//!     "exceeds_reaction": false
//!   }],
//!   "mode_switches": [{"cycle": 12, "at_ns": 480000000, "time_ns": 480000000,
//!                      "from": "drive", "to": "degraded", "from_index": 0, "to_index": 1,
//!                      "cores": [0, 1]}], // once per switch, with the cores that recorded it
//!   "releases": {                        // totals over every task, as above
//!     "expectation": "header" | "inferred", // per-mode task sets from the header (format 2),
//!                                        // or inferred from the releases seen in each mode
//!     "planned": 1000, "seen": 1000, "missed": 0, "duplicate": 0, "unplanned": 0,
//!     "missed_in_loss": 0,
//!     "notes": []                        // doubts about the expectation, one sentence each
//!   },
//!   "dropped_events": 0,                 // records lost in full trace rings, all files
//!   "break": null | {"file": "t.trc", "offset": 4096, "reason": "chunk checksum mismatch ..."}
//!                                        // the first damaged file: figures are partial
//! }
//! ```
//!
//! Releases are accounted as [`crate::analysis::releases`] defines them: per task over its traced interval,
//! the mode of each hyperperiod cycle from the mode switch records, and the tasks each mode
//! releases from the header (or, for a format-1 trace, inferred from the records).
//!
//! Data age and reaction time follow the definitions of the plan's chain bounds
//! (`takt::plan::ChainBound`) in logical time: data age of a last-task job = its LET
//! deadline - the logical release of the first-task job whose data it carries; reaction
//! time for a first-task job `j` = the LET deadline of the first last-task job carrying data
//! of `j` or later - the release of job `j - 1`. Origins are found by following the sample
//! sequence numbers of the `Read` and `Publish` records, never by assuming the schedule.

use std::path::Path;

use serde::{Deserialize, Serialize};
use takt::trace::{ClockKind, TraceBreak};

use crate::analysis::{self, Analysis, JobRange, MissCounts, ReleaseBasis, TaskReleases};
use crate::load::Loaded;

/// Version of the JSON layout above.
pub const FORMAT_VERSION: u32 = 1;

/// The clock a run's times are on: `"sim"` (simulated) or `"real"` (`CLOCK_MONOTONIC`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Clock {
    Real,
    Sim,
}

impl From<ClockKind> for Clock {
    fn from(c: ClockKind) -> Self {
        match c {
            ClockKind::Real => Clock::Real,
            ClockKind::Sim => Clock::Sim,
        }
    }
}

impl Clock {
    /// `"real"` or `"sim"`, as in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Clock::Real => "real",
            Clock::Sim => "sim",
        }
    }
}

/// Where the expectation of which tasks a mode releases comes from: `"header"` or
/// `"inferred"` (see [`ReleaseBasis`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expectation {
    Header,
    Inferred,
}

impl From<ReleaseBasis> for Expectation {
    fn from(b: ReleaseBasis) -> Self {
        match b {
            ReleaseBasis::Header => Expectation::Header,
            ReleaseBasis::Inferred => Expectation::Inferred,
        }
    }
}

/// The report of one run: the JSON object of the module docs, field by field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub format_version: u32,
    pub deployment: String,
    pub files: Vec<FileReport>,
    pub clock: Clock,
    pub epoch_ns: u64,
    pub hyperperiod_ns: u64,
    pub tasks: Vec<TaskReport>,
    pub chains: Vec<ChainReport>,
    pub mode_switches: Vec<ModeSwitchReport>,
    pub releases: ReleaseTotals,
    pub dropped_events: u64,
    #[serde(rename = "break")]
    pub break_: Option<BreakReport>,
}

/// The release accounting summed over every task, with doubts about the expectation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseTotals {
    pub expectation: Expectation,
    pub planned: u64,
    pub seen: u64,
    pub missed: u64,
    pub duplicate: u64,
    pub unplanned: u64,
    pub missed_in_loss: u64,
    pub notes: Vec<String>,
}

/// One task's releases against the plan; job ranges are inclusive `[first, last]`,
/// duplicates `[job, records naming it]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskReleasesReport {
    pub planned: u64,
    pub seen: u64,
    pub missed: u64,
    pub duplicate: u64,
    pub unplanned: u64,
    pub missed_in_loss: u64,
    pub first_job: Option<u64>,
    pub last_job: Option<u64>,
    pub missed_jobs: Vec<[u64; 2]>,
    pub duplicate_jobs: Vec<[u64; 2]>,
    pub unplanned_jobs: Vec<[u64; 2]>,
    pub unaccounted: Option<String>,
}

impl TaskReleasesReport {
    pub fn new(r: &TaskReleases) -> Self {
        let ranges = |v: &[JobRange]| v.iter().map(|r| [r.first, r.last]).collect();
        TaskReleasesReport {
            planned: r.planned,
            seen: r.seen,
            missed: r.missed,
            duplicate: r.duplicate,
            unplanned: r.unplanned,
            missed_in_loss: r.missed_in_loss,
            first_job: r.first_job,
            last_job: r.last_job,
            missed_jobs: ranges(&r.missed_jobs),
            duplicate_jobs: r
                .duplicate_jobs
                .iter()
                .map(|d| [d.job, d.records])
                .collect(),
            unplanned_jobs: ranges(&r.unplanned_jobs),
            unaccounted: r.unaccounted.map(|u| u.to_string()),
        }
    }
}

/// One trace file of the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReport {
    pub path: String,
    pub app: String,
    pub records: usize,
    pub dropped_events: u64,
    #[serde(rename = "break")]
    pub break_: Option<BreakReport>,
}

/// Where and why a file stopped being readable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakReport {
    pub file: String,
    pub offset: u64,
    pub reason: String,
}

impl BreakReport {
    pub fn new(path: &Path, b: &TraceBreak) -> Self {
        BreakReport {
            file: path.display().to_string(),
            offset: b.offset,
            reason: b.reason.to_string(),
        }
    }
}

/// One task's figures; durations in ns, `None` (`null`) without samples.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskReport {
    pub name: String,
    pub index: u32,
    pub core: Option<u32>,
    pub period_ns: Option<u64>,
    pub budget_ns: Option<u64>,
    pub let_ns: Option<u64>,
    pub jobs: u64,
    pub executed: u64,
    pub skips: u64,
    pub overruns: u64,
    pub deadline_misses: u64,
    pub attribution: AttributionReport,
    /// Jobs that reported a fault (`StepContext::fault`), every report, and the codes of
    /// the first and the last such job (trace format 4 on; zeros and nulls before).
    pub faults: FaultsReport,
    pub off_cpu_ns_p99: Option<u64>,
    pub off_cpu_ns_max: Option<u64>,
    pub incomplete: u64,
    pub lateness_ns_min: Option<u64>,
    pub lateness_ns_p50: Option<u64>,
    pub lateness_ns_p99: Option<u64>,
    pub lateness_ns_max: Option<u64>,
    pub execution_ns_min: Option<u64>,
    pub execution_ns_p50: Option<u64>,
    pub execution_ns_p99: Option<u64>,
    pub execution_ns_max: Option<u64>,
    pub releases: Option<TaskReleasesReport>,
}

/// A task's fault reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultsReport {
    pub jobs: u64,
    pub reports: u64,
    pub first_code: Option<u16>,
    pub last_code: Option<u16>,
}

impl From<&crate::analysis::FaultFigures> for FaultsReport {
    fn from(f: &crate::analysis::FaultFigures) -> Self {
        FaultsReport {
            jobs: f.jobs,
            reports: f.reports,
            first_code: f.first_code,
            last_code: f.last_code,
        }
    }
}

/// Who caused a task's skips, overruns and deadline misses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributionReport {
    pub platform: CountsReport,
    pub takt: CountsReport,
    pub unattributed: CountsReport,
}

/// Skips, overruns and deadline misses of one attribution class.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountsReport {
    pub skips: u64,
    pub overruns: u64,
    pub deadline_misses: u64,
}

impl From<&MissCounts> for CountsReport {
    fn from(c: &MissCounts) -> Self {
        CountsReport {
            skips: c.skips,
            overruns: c.overruns,
            deadline_misses: c.deadline_misses,
        }
    }
}

/// One declared chain: measured data age and reaction next to the plan's bounds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    pub name: String,
    pub tasks: Vec<String>,
    pub topics: Vec<String>,
    pub invalid: Option<String>,
    pub measured: MeasuredReport,
    pub bound: BoundReport,
    pub exceeds_bound: bool,
    pub exceeds_data_age: bool,
    pub exceeds_reaction: bool,
}

/// A chain's measured instances and quantiles (logical time, ns).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasuredReport {
    pub instances: u64,
    pub no_data: u64,
    pub unknown: u64,
    pub data_age_samples: usize,
    pub data_age_ns_min: Option<u64>,
    pub data_age_ns_p50: Option<u64>,
    pub data_age_ns_p99: Option<u64>,
    pub data_age_ns_max: Option<u64>,
    pub reaction_samples: usize,
    pub reaction_unknown: u64,
    pub reaction_ns_min: Option<u64>,
    pub reaction_ns_p50: Option<u64>,
    pub reaction_ns_p99: Option<u64>,
    pub reaction_ns_max: Option<u64>,
}

/// The plan's exact LET bounds of a chain; `None` when no mode runs the whole chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundReport {
    pub bound_data_age_ns: Option<u64>,
    pub bound_reaction_ns: Option<u64>,
}

/// One mode switch, once, with the cores that recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeSwitchReport {
    pub cycle: u64,
    pub at_ns: u64,
    pub time_ns: u64,
    pub from: String,
    pub to: String,
    pub from_index: u64,
    pub to_index: u64,
    pub cores: Vec<u8>,
}

impl Report {
    /// The report of a loaded run and its analysis (`run.analyze()`).
    pub fn new(loaded: &Loaded, a: &Analysis) -> Report {
        let h = &loaded.header;
        Report {
            format_version: FORMAT_VERSION,
            deployment: loaded.deployment_name(),
            files: loaded
                .files
                .iter()
                .map(|f| FileReport {
                    path: f.path.display().to_string(),
                    app: f.app_name.clone(),
                    records: f.records,
                    dropped_events: f.dropped,
                    break_: f.error.as_ref().map(|b| BreakReport::new(&f.path, b)),
                })
                .collect(),
            clock: a.clock.into(),
            epoch_ns: a.epoch_ns,
            hyperperiod_ns: a.hyperperiod_ns,
            tasks: a
                .tasks
                .iter()
                .map(|t| {
                    let [lateness_ns_min, lateness_ns_p50, lateness_ns_p99, lateness_ns_max] =
                        analysis::quantiles::min_p50_p99_max(t.lateness);
                    let [execution_ns_min, execution_ns_p50, execution_ns_p99, execution_ns_max] =
                        analysis::quantiles::min_p50_p99_max(t.execution);
                    TaskReport {
                        name: t.name.clone(),
                        index: t.task,
                        core: t.core,
                        period_ns: t.period_ns,
                        budget_ns: t.budget_ns,
                        let_ns: t.let_ns,
                        jobs: t.jobs,
                        executed: t.executed,
                        skips: t.skips,
                        overruns: t.overruns,
                        deadline_misses: t.deadline_misses,
                        attribution: AttributionReport {
                            platform: (&t.attribution.platform).into(),
                            takt: (&t.attribution.takt).into(),
                            unattributed: (&t.attribution.unattributed).into(),
                        },
                        faults: (&t.faults).into(),
                        off_cpu_ns_p99: t.off_cpu.map(|q| q.p99_ns),
                        off_cpu_ns_max: t.off_cpu.map(|q| q.max_ns),
                        incomplete: t.incomplete,
                        lateness_ns_min,
                        lateness_ns_p50,
                        lateness_ns_p99,
                        lateness_ns_max,
                        execution_ns_min,
                        execution_ns_p50,
                        execution_ns_p99,
                        execution_ns_max,
                        // Both lists are indexed by task (see `analysis::analyze`).
                        releases: a
                            .releases
                            .tasks
                            .get(t.task as usize)
                            .map(TaskReleasesReport::new),
                    }
                })
                .collect(),
            chains: a
                .chains
                .iter()
                .map(|c| {
                    let [data_age_ns_min, data_age_ns_p50, data_age_ns_p99, data_age_ns_max] =
                        analysis::quantiles::min_p50_p99_max(c.data_age);
                    let [reaction_ns_min, reaction_ns_p50, reaction_ns_p99, reaction_ns_max] =
                        analysis::quantiles::min_p50_p99_max(c.reaction);
                    ChainReport {
                        name: c.name.clone(),
                        tasks: c.tasks.iter().map(|&t| analysis::task_name(h, t)).collect(),
                        topics: c
                            .ports
                            .iter()
                            .map(|&p| analysis::topic_name(h, p))
                            .collect(),
                        invalid: c.invalid.map(|i| i.to_string()),
                        measured: MeasuredReport {
                            instances: c.instances,
                            no_data: c.no_data,
                            unknown: c.unknown,
                            data_age_samples: c.data_age_samples_ns.len(),
                            data_age_ns_min,
                            data_age_ns_p50,
                            data_age_ns_p99,
                            data_age_ns_max,
                            reaction_samples: c.reaction_samples_ns.len(),
                            reaction_unknown: c.reaction_unknown,
                            reaction_ns_min,
                            reaction_ns_p50,
                            reaction_ns_p99,
                            reaction_ns_max,
                        },
                        bound: BoundReport {
                            bound_data_age_ns: c.bound_data_age_ns,
                            bound_reaction_ns: c.bound_reaction_ns,
                        },
                        exceeds_bound: c.exceeds_bound(),
                        exceeds_data_age: c.exceeds_data_age,
                        exceeds_reaction: c.exceeds_reaction,
                    }
                })
                .collect(),
            mode_switches: a
                .mode_switches
                .iter()
                .map(|s| ModeSwitchReport {
                    cycle: s.cycle,
                    at_ns: s.at_ns,
                    time_ns: s.time_ns,
                    from: s.from_name.clone(),
                    to: s.to_name.clone(),
                    from_index: s.from_mode,
                    to_index: s.to_mode,
                    cores: s.cores.clone(),
                })
                .collect(),
            releases: ReleaseTotals {
                expectation: a.releases.basis.into(),
                planned: a.releases.planned,
                seen: a.releases.seen,
                missed: a.releases.missed,
                duplicate: a.releases.duplicate,
                unplanned: a.releases.unplanned,
                missed_in_loss: a.releases.missed_in_loss,
                notes: a.releases.notes.clone(),
            },
            dropped_events: loaded.dropped_total,
            break_: loaded.first_break().map(|(p, b)| BreakReport::new(p, b)),
        }
    }
}

//! `takt trace report FILE... [--json]`: per-task and per-chain figures as aligned text
//! tables or as JSON.
//!
//! Owns: the layout of the text report and the JSON schema below. It must never compute a
//! figure itself (that is `analysis`) nor fail on a damaged file: it prints what could be
//! read, the break in the `break` field, and a warning on stderr (exit code 0); only a run
//! of which nothing can be read (bad magic, unknown version, broken header, files of
//! different runs) is an error with exit code 2.
//!
//! ## Trace report JSON
//!
//! `takt trace report FILE... --json` prints one JSON object. Every duration is an integer
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
//! Releases are accounted as `analysis` defines them: per task over its traced interval,
//! the mode of each hyperperiod cycle from the mode switch records, and the tasks each mode
//! releases from the header (or, for a format-1 trace, inferred from the records).
//!
//! Data age and reaction time follow the definitions of the plan's chain bounds
//! (`takt::plan::ChainBound`) in logical time: data age of a last-task job = its LET
//! deadline - the logical release of the first-task job whose data it carries; reaction
//! time for a first-task job `j` = the LET deadline of the first last-task job carrying data
//! of `j` or later - the release of job `j - 1`. Origins are found by following the sample
//! sequence numbers of the `Read` and `Publish` records, never by assuming the schedule.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;
use takt::trace::{ClockKind, TraceBreak};

use super::analysis::{
    self, Analysis, JobRange, MissAttribution, MissCounts, Quantiles, ReleaseBasis, TaskReleases,
};
use super::{load, Loaded};
use crate::common::Failure;

/// Version of the JSON layout above.
pub const FORMAT_VERSION: u32 = 1;
/// Most missed, duplicate or unplanned ranges the text report lists per task and kind; the
/// JSON lists them all.
const MAX_DETAIL_LINES: usize = 20;

pub fn report(paths: &[PathBuf], json: bool) -> Result<(), Failure> {
    let loaded = load(paths)?;
    loaded.warn_about_damage();
    let a = analysis::analyze(&loaded.header, &loaded.records);
    if json {
        let text = serde_json::to_string_pretty(&to_json(&loaded, &a))
            .map_err(|e| Failure::run_failed(format!("cannot encode the report as JSON: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", to_text(&loaded, &a));
    }
    Ok(())
}

#[derive(Serialize)]
struct ReportJson {
    format_version: u32,
    deployment: String,
    files: Vec<FileJson>,
    clock: &'static str,
    epoch_ns: u64,
    hyperperiod_ns: u64,
    tasks: Vec<TaskJson>,
    chains: Vec<ChainJson>,
    mode_switches: Vec<ModeSwitchJson>,
    releases: ReleasesJson,
    dropped_events: u64,
    #[serde(rename = "break")]
    break_: Option<BreakJson>,
}

#[derive(Serialize)]
struct ReleasesJson {
    expectation: &'static str,
    planned: u64,
    seen: u64,
    missed: u64,
    duplicate: u64,
    unplanned: u64,
    missed_in_loss: u64,
    notes: Vec<String>,
}

#[derive(Serialize)]
struct TaskReleasesJson {
    planned: u64,
    seen: u64,
    missed: u64,
    duplicate: u64,
    unplanned: u64,
    missed_in_loss: u64,
    first_job: Option<u64>,
    last_job: Option<u64>,
    missed_jobs: Vec<[u64; 2]>,
    duplicate_jobs: Vec<[u64; 2]>,
    unplanned_jobs: Vec<[u64; 2]>,
    unaccounted: Option<String>,
}

impl TaskReleasesJson {
    fn new(r: &TaskReleases) -> Self {
        let ranges = |v: &[JobRange]| v.iter().map(|r| [r.first, r.last]).collect();
        TaskReleasesJson {
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
            unaccounted: r.unaccounted.clone(),
        }
    }
}

#[derive(Serialize)]
struct FileJson {
    path: String,
    app: String,
    records: usize,
    dropped_events: u64,
    #[serde(rename = "break")]
    break_: Option<BreakJson>,
}

#[derive(Serialize)]
struct BreakJson {
    file: String,
    offset: u64,
    reason: String,
}

impl BreakJson {
    fn new(path: &std::path::Path, b: &TraceBreak) -> Self {
        BreakJson {
            file: path.display().to_string(),
            offset: b.offset,
            reason: b.reason.to_string(),
        }
    }
}

#[derive(Serialize)]
struct TaskJson {
    name: String,
    index: u32,
    core: Option<u32>,
    period_ns: Option<u64>,
    budget_ns: Option<u64>,
    let_ns: Option<u64>,
    jobs: u64,
    executed: u64,
    skips: u64,
    overruns: u64,
    deadline_misses: u64,
    attribution: AttributionJson,
    faults: FaultsJson,
    off_cpu_ns_p99: Option<u64>,
    off_cpu_ns_max: Option<u64>,
    incomplete: u64,
    lateness_ns_min: Option<u64>,
    lateness_ns_p50: Option<u64>,
    lateness_ns_p99: Option<u64>,
    lateness_ns_max: Option<u64>,
    execution_ns_min: Option<u64>,
    execution_ns_p50: Option<u64>,
    execution_ns_p99: Option<u64>,
    execution_ns_max: Option<u64>,
    releases: Option<TaskReleasesJson>,
}

// --- fault reports (issue #11.5) ---
#[derive(Serialize)]
struct FaultsJson {
    jobs: u64,
    reports: u64,
    first_code: Option<u16>,
    last_code: Option<u16>,
}

impl From<&analysis::FaultFigures> for FaultsJson {
    fn from(f: &analysis::FaultFigures) -> Self {
        FaultsJson {
            jobs: f.jobs,
            reports: f.reports,
            first_code: f.first_code,
            last_code: f.last_code,
        }
    }
}

/// One line per task whose jobs reported faults.
fn faults_text(out: &mut String, a: &Analysis) {
    let code = |c: Option<u16>| c.map_or("-".to_string(), |c| c.to_string());
    for t in a.tasks.iter().filter(|t| t.faults.jobs > 0) {
        let _ = writeln!(
            out,
            "  faults: {} {} job(s) ({} report(s)), first code {}, last code {}",
            t.name,
            t.faults.jobs,
            t.faults.reports,
            code(t.faults.first_code),
            code(t.faults.last_code)
        );
    }
}
// --- end fault reports ---

#[derive(Serialize)]
struct AttributionJson {
    platform: CountsJson,
    takt: CountsJson,
    unattributed: CountsJson,
}

#[derive(Serialize)]
struct CountsJson {
    skips: u64,
    overruns: u64,
    deadline_misses: u64,
}

impl From<&MissCounts> for CountsJson {
    fn from(c: &MissCounts) -> Self {
        CountsJson {
            skips: c.skips,
            overruns: c.overruns,
            deadline_misses: c.deadline_misses,
        }
    }
}

#[derive(Serialize)]
struct ChainJson {
    name: String,
    tasks: Vec<String>,
    topics: Vec<String>,
    invalid: Option<String>,
    measured: MeasuredJson,
    bound: BoundJson,
    exceeds_bound: bool,
    exceeds_data_age: bool,
    exceeds_reaction: bool,
}

#[derive(Serialize)]
struct MeasuredJson {
    instances: u64,
    no_data: u64,
    unknown: u64,
    data_age_samples: usize,
    data_age_ns_min: Option<u64>,
    data_age_ns_p50: Option<u64>,
    data_age_ns_p99: Option<u64>,
    data_age_ns_max: Option<u64>,
    reaction_samples: usize,
    reaction_unknown: u64,
    reaction_ns_min: Option<u64>,
    reaction_ns_p50: Option<u64>,
    reaction_ns_p99: Option<u64>,
    reaction_ns_max: Option<u64>,
}

#[derive(Serialize)]
struct BoundJson {
    bound_data_age_ns: Option<u64>,
    bound_reaction_ns: Option<u64>,
}

#[derive(Serialize)]
struct ModeSwitchJson {
    cycle: u64,
    at_ns: u64,
    time_ns: u64,
    from: String,
    to: String,
    from_index: u64,
    to_index: u64,
    cores: Vec<u8>,
}

/// `(min, p50, p99, max)` of optional quantiles.
fn four(q: Option<Quantiles>) -> [Option<u64>; 4] {
    match q {
        Some(q) => [
            Some(q.min_ns),
            Some(q.p50_ns),
            Some(q.p99_ns),
            Some(q.max_ns),
        ],
        None => [None; 4],
    }
}

fn basis_name(basis: ReleaseBasis) -> &'static str {
    match basis {
        ReleaseBasis::Header => "header",
        ReleaseBasis::Inferred => "inferred",
    }
}

pub fn clock_name(clock: ClockKind) -> &'static str {
    match clock {
        ClockKind::Real => "real",
        ClockKind::Sim => "sim",
    }
}

fn to_json(loaded: &Loaded, a: &Analysis) -> ReportJson {
    let h = &loaded.header;
    ReportJson {
        format_version: FORMAT_VERSION,
        deployment: loaded.deployment_name(),
        files: loaded
            .files
            .iter()
            .map(|f| FileJson {
                path: f.path.display().to_string(),
                app: f.app_name.clone(),
                records: f.records,
                dropped_events: f.dropped,
                break_: f.error.as_ref().map(|b| BreakJson::new(&f.path, b)),
            })
            .collect(),
        clock: clock_name(a.clock),
        epoch_ns: a.epoch_ns,
        hyperperiod_ns: a.hyperperiod_ns,
        tasks: a
            .tasks
            .iter()
            .map(|t| {
                let [lateness_ns_min, lateness_ns_p50, lateness_ns_p99, lateness_ns_max] =
                    four(t.lateness);
                let [execution_ns_min, execution_ns_p50, execution_ns_p99, execution_ns_max] =
                    four(t.execution);
                TaskJson {
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
                    attribution: AttributionJson {
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
                        .map(TaskReleasesJson::new),
                }
            })
            .collect(),
        chains: a
            .chains
            .iter()
            .map(|c| {
                let [data_age_ns_min, data_age_ns_p50, data_age_ns_p99, data_age_ns_max] =
                    four(c.data_age);
                let [reaction_ns_min, reaction_ns_p50, reaction_ns_p99, reaction_ns_max] =
                    four(c.reaction);
                ChainJson {
                    name: c.name.clone(),
                    tasks: c.tasks.iter().map(|&t| analysis::task_name(h, t)).collect(),
                    topics: c
                        .ports
                        .iter()
                        .map(|&p| analysis::topic_name(h, p))
                        .collect(),
                    invalid: c.invalid.clone(),
                    measured: MeasuredJson {
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
                    bound: BoundJson {
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
            .map(|s| ModeSwitchJson {
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
        releases: ReleasesJson {
            expectation: basis_name(a.releases.basis),
            planned: a.releases.planned,
            seen: a.releases.seen,
            missed: a.releases.missed,
            duplicate: a.releases.duplicate,
            unplanned: a.releases.unplanned,
            missed_in_loss: a.releases.missed_in_loss,
            notes: a.releases.notes.clone(),
        },
        dropped_events: loaded.dropped_total,
        break_: loaded.first_break().map(|(p, b)| BreakJson::new(p, b)),
    }
}

/// A duration for a table cell: ns below 1 us, then us, ms and s with a precision that
/// keeps four significant digits; `-` when there is nothing to show.
pub fn human_ns(ns: Option<u64>) -> String {
    let Some(ns) = ns else {
        return "-".into();
    };
    let (value, unit) = if ns < 1_000 {
        return format!("{ns}ns");
    } else if ns < 1_000_000 {
        (ns as f64 / 1e3, "us")
    } else if ns < 1_000_000_000 {
        (ns as f64 / 1e6, "ms")
    } else {
        (ns as f64 / 1e9, "s")
    };
    let decimals = if value < 10.0 {
        3
    } else if value < 100.0 {
        2
    } else {
        1
    };
    format!("{value:.decimals$}{unit}")
}

/// Aligned columns: the first left-aligned, the rest right-aligned (they hold numbers),
/// separated by two spaces, each line indented by two.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::from(" ");
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            let pad = w.saturating_sub(cell.chars().count());
            text.push(' ');
            if i == 0 {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            } else {
                text.push(' ');
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

fn to_text(loaded: &Loaded, a: &Analysis) -> String {
    let h = &loaded.header;
    let mut out = String::new();
    // Writing into a `String` cannot fail, so the `fmt::Result`s below are ignored.
    let _ = writeln!(
        out,
        "deployment `{}`: {} clock, hyperperiod {}, epoch {} ns",
        loaded.deployment_name(),
        clock_name(a.clock),
        human_ns(Some(a.hyperperiod_ns)),
        a.epoch_ns
    );
    for f in &loaded.files {
        let _ = write!(
            out,
            "file {} (app `{}`): {} records",
            f.path.display(),
            f.app_name,
            f.records
        );
        match &f.error {
            Some(b) => {
                let _ = writeln!(out, ", PARTIAL: breaks {b}");
            }
            None => {
                let _ = writeln!(out, ", complete");
            }
        }
    }

    let _ = writeln!(
        out,
        "\ntasks (lateness = actual release - planned window start)"
    );
    let rows: Vec<Vec<String>> = a
        .tasks
        .iter()
        .map(|t| {
            let mut row = vec![
                t.name.clone(),
                t.core.map_or("-".into(), |c| c.to_string()),
                t.jobs.to_string(),
                t.executed.to_string(),
                t.skips.to_string(),
                t.overruns.to_string(),
                t.deadline_misses.to_string(),
                t.faults.jobs.to_string(),
            ];
            row.extend(four(t.lateness).map(human_ns));
            row.extend(four(t.execution).map(human_ns));
            row
        })
        .collect();
    out.push_str(&table(
        &[
            "task", "core", "jobs", "run", "skip", "overrun", "miss", "fault", "late min",
            "late p50", "late p99", "late max", "exec min", "exec p50", "exec p99", "exec max",
        ],
        &rows,
    ));
    attribution_text(&mut out, a);
    faults_text(&mut out, a);
    let incomplete: Vec<String> = a
        .tasks
        .iter()
        .filter(|t| t.incomplete > 0)
        .map(|t| format!("{} ({})", t.name, t.incomplete))
        .collect();
    if !incomplete.is_empty() {
        let _ = writeln!(
            out,
            "  incomplete jobs (records lost or cut off): {}",
            incomplete.join(", ")
        );
    }

    releases_text(&mut out, h, a);

    if !a.chains.is_empty() {
        let _ = writeln!(
            out,
            "\nchains (logical time; measured next to the plan's exact LET bound)"
        );
        let rows: Vec<Vec<String>> = a
            .chains
            .iter()
            .map(|c| {
                let mut row = vec![c.name.clone(), c.data_age_samples_ns.len().to_string()];
                let age = four(c.data_age);
                row.extend([age[0], age[1], age[3]].map(human_ns));
                row.push(human_ns(c.bound_data_age_ns));
                row.push(c.reaction_samples_ns.len().to_string());
                let re = four(c.reaction);
                row.extend([re[0], re[1], re[3]].map(human_ns));
                row.push(human_ns(c.bound_reaction_ns));
                row.push(
                    if c.invalid.is_some() {
                        "INVALID"
                    } else if c.exceeds_bound() {
                        "EXCEEDS BOUND"
                    } else if c.data_age.is_none() && c.reaction.is_none() {
                        "no samples"
                    } else {
                        "ok"
                    }
                    .into(),
                );
                row
            })
            .collect();
        out.push_str(&table(
            &[
                "chain",
                "ages",
                "age min",
                "age p50",
                "age max",
                "age bound",
                "reactions",
                "react min",
                "react p50",
                "react max",
                "react bound",
                "status",
            ],
            &rows,
        ));
        for c in &a.chains {
            let path: Vec<String> = c.tasks.iter().map(|&t| analysis::task_name(h, t)).collect();
            let _ = write!(out, "  `{}`: {}", c.name, path.join(" -> "));
            if let Some(why) = &c.invalid {
                let _ = write!(out, "; cannot be followed: {why}");
            }
            if c.no_data > 0 {
                let _ = write!(out, "; {} start-up instance(s) without data", c.no_data);
            }
            if c.unknown > 0 || c.reaction_unknown > 0 {
                let _ = write!(
                    out,
                    "; {} instance(s) and {} reaction(s) unmeasured (records missing)",
                    c.unknown, c.reaction_unknown
                );
            }
            let _ = writeln!(out);
        }
    }

    let _ = writeln!(out, "\nmode switches: {}", a.mode_switches.len());
    for s in &a.mode_switches {
        let _ = writeln!(
            out,
            "  cycle {} (logical {}): `{}` -> `{}`",
            s.cycle,
            human_ns(Some(s.at_ns)),
            s.from_name,
            s.to_name
        );
    }
    let _ = writeln!(
        out,
        "dropped events: {}{}",
        loaded.dropped_total,
        if loaded.dropped_total > 0 {
            " (records lost in full trace rings)"
        } else {
            ""
        }
    );
    if let Some((path, b)) = loaded.first_break() {
        let _ = writeln!(
            out,
            "PARTIAL REPORT: {} breaks {b}; everything after that point is missing",
            path.display()
        );
    }
    out
}

/// `job 7 (cycle 3` or `jobs 8..=11 (cycles 4..=5`, for a detail line.
/// Who caused the skips, overruns and deadline misses: the platform (the job's CPU time
/// fit; the rest was time off the CPU or a late wake-up) or takt/the task.
fn attribution_text(out: &mut String, a: &Analysis) {
    let mut all = MissAttribution::default();
    for t in &a.tasks {
        all.add(&t.attribution);
    }
    let counts = |c: &MissCounts| {
        format!(
            "{} (skips {}, overruns {}, deadline misses {})",
            c.total(),
            c.skips,
            c.overruns,
            c.deadline_misses
        )
    };
    let off_cpu_max = a
        .tasks
        .iter()
        .filter_map(|t| t.off_cpu.map(|q| q.max_ns))
        .max();
    let _ = writeln!(
        out,
        "  attribution: platform {}, takt/task {}{}; longest time off the CPU in one job {}",
        counts(&all.platform),
        counts(&all.takt),
        if all.unattributed.total() > 0 {
            format!(
                ", not attributed (trace format before 3) {}",
                counts(&all.unattributed)
            )
        } else {
            String::new()
        },
        human_ns(off_cpu_max)
    );
    for t in a
        .tasks
        .iter()
        .filter(|t| t.attribution.platform.total() + t.attribution.takt.total() > 0)
    {
        let _ = writeln!(
            out,
            "    {}: platform {}, takt/task {}",
            t.name,
            counts(&t.attribution.platform),
            counts(&t.attribution.takt)
        );
    }
}

fn jobs_and_cycles(t: &TaskReleases, r: &JobRange) -> String {
    let jobs = if r.first == r.last {
        format!("job {}", r.first)
    } else {
        format!("jobs {}..={}", r.first, r.last)
    };
    match (t.cycle_of(r.first), t.cycle_of(r.last)) {
        (Some(c0), Some(c1)) if c0 == c1 => format!("{jobs} (cycle {c0}"),
        (Some(c0), Some(c1)) => format!("{jobs} (cycles {c0}..={c1}"),
        _ => format!("{jobs} ("),
    }
}

fn mode_text(h: &takt::trace::TraceHeader, mode: Option<u64>) -> String {
    mode.map_or_else(
        || "an unrecorded mode".to_string(),
        |m| format!("mode `{}`", analysis::mode_name(h, m)),
    )
}

/// The releases table, a line per missed, duplicate or unplanned range (at most
/// [`MAX_DETAIL_LINES`] per task and kind) and the summary line.
fn releases_text(out: &mut String, h: &takt::trace::TraceHeader, a: &Analysis) {
    let r = &a.releases;
    let _ = writeln!(
        out,
        "\nreleases (per task from its first to its last release in any file; modes' task sets {})",
        match r.basis {
            ReleaseBasis::Header => "from the trace header",
            ReleaseBasis::Inferred =>
                "inferred from the releases seen in each mode (the trace header has none)",
        }
    );
    let rows: Vec<Vec<String>> = r
        .tasks
        .iter()
        .map(|t| {
            let job = |j: Option<u64>| j.map_or("-".into(), |j| j.to_string());
            let (planned, missed) = if t.unaccounted.is_some() {
                ("?".to_string(), "?".to_string())
            } else {
                (t.planned.to_string(), t.missed.to_string())
            };
            vec![
                t.name.clone(),
                planned,
                t.seen.to_string(),
                missed,
                t.duplicate.to_string(),
                t.unplanned.to_string(),
                job(t.first_job),
                job(t.last_job),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "task",
            "planned",
            "seen",
            "missed",
            "duplicate",
            "unplanned",
            "first job",
            "last job",
        ],
        &rows,
    ));
    for t in &r.tasks {
        let more = |out: &mut String, total: usize, what: &str| {
            if total > MAX_DETAIL_LINES {
                let _ = writeln!(
                    out,
                    "  ... and {} more {what} ranges of task `{}` (all in --json)",
                    total - MAX_DETAIL_LINES,
                    t.name
                );
            }
        };
        for m in t.missed_jobs.iter().take(MAX_DETAIL_LINES) {
            let _ = write!(
                out,
                "  missed: task `{}` {}, {})",
                t.name,
                jobs_and_cycles(t, m),
                mode_text(h, m.mode)
            );
            if m.in_loss > 0 {
                let _ = write!(
                    out,
                    "; {} of them near records lost in a full ring: perhaps released unrecorded",
                    m.in_loss
                );
            }
            let _ = writeln!(out);
        }
        more(out, t.missed_jobs.len(), "missed");
        for d in t.duplicate_jobs.iter().take(MAX_DETAIL_LINES) {
            let cycle = t
                .cycle_of(d.job)
                .map_or_else(String::new, |c| format!(" (cycle {c})"));
            let _ = writeln!(
                out,
                "  duplicate: task `{}` job {}{cycle} released by {} records",
                t.name, d.job, d.records
            );
        }
        more(out, t.duplicate_jobs.len(), "duplicate");
        for u in t.unplanned_jobs.iter().take(MAX_DETAIL_LINES) {
            let _ = writeln!(
                out,
                "  unplanned: task `{}` {}) released, but {} does not release it",
                t.name,
                jobs_and_cycles(t, u),
                mode_text(h, u.mode)
            );
        }
        more(out, t.unplanned_jobs.len(), "unplanned");
        if let Some(why) = &t.unaccounted {
            let _ = writeln!(
                out,
                "  not accounted: task `{}`: {why}; its planned and missed releases are unknown",
                t.name
            );
        }
    }
    for note in &r.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    let _ = write!(
        out,
        "missed releases: {}, duplicate releases: {}",
        r.missed, r.duplicate
    );
    if r.unplanned > 0 {
        let _ = write!(out, ", unplanned releases: {}", r.unplanned);
    }
    if r.missed_in_loss > 0 {
        let _ = write!(
            out,
            " ({} of the missed near records lost in full rings)",
            r.missed_in_loss
        );
    }
    let _ = writeln!(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well_in_cells() {
        assert_eq!(human_ns(None), "-");
        assert_eq!(human_ns(Some(0)), "0ns");
        assert_eq!(human_ns(Some(999)), "999ns");
        assert_eq!(human_ns(Some(1_500)), "1.500us");
        assert_eq!(human_ns(Some(12_345_678)), "12.35ms");
        assert_eq!(human_ns(Some(250_000_000)), "250.0ms");
        assert_eq!(human_ns(Some(3_000_000_000)), "3.000s");
    }

    #[test]
    fn tables_align_their_columns() {
        let t = table(
            &["task", "jobs"],
            &[
                vec!["radar".into(), "7".into()],
                vec!["x".into(), "1234".into()],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines,
            vec!["  task   jobs", "  radar     7", "  x      1234"]
        );
    }
}

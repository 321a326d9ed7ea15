//! `takt trace report FILE... [--json]`: per-task and per-chain figures as aligned text
//! tables or as JSON.
//!
//! Owns: the layout of the text report. The JSON is the library's
//! [`takt_trace::report::Report`] (its module docs hold the schema), printed with
//! `serde_json::to_string_pretty`. It must never compute a figure itself (that is
//! `takt_trace::analysis`) nor fail on a damaged file: it prints what could be read, the
//! break in the `break` field, and a warning on stderr (exit code 0); only a run of which
//! nothing can be read (bad magic, unknown version, broken header, files of different runs)
//! is an error with exit code 2.

use std::fmt::Write as _;
use std::path::PathBuf;

use takt_trace::analysis::quantiles::min_p50_p99_max as four;
use takt_trace::analysis::{
    self, Analysis, JobRange, MissAttribution, MissCounts, ReleaseBasis, TaskReleases,
};
use takt_trace::report::{Clock, Report};
use takt_trace::Loaded;

use super::load;
use crate::common::Failure;

/// Most missed, duplicate or unplanned ranges the text report lists per task and kind; the
/// JSON lists them all.
const MAX_DETAIL_LINES: usize = 20;

pub fn report(paths: &[PathBuf], json: bool) -> Result<(), Failure> {
    let loaded = load(paths)?;
    let a = loaded.analyze();
    if json {
        let text = serde_json::to_string_pretty(&Report::new(&loaded, &a))
            .map_err(|e| Failure::run_failed(format!("cannot encode the report as JSON: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", to_text(&loaded, &a));
    }
    Ok(())
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
        Clock::from(a.clock).name(),
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

//! `takt plan MANIFEST --svg FILE [--mode NAME]`: one mode's static tables as a Gantt chart.
//!
//! Owns: turning a verified plan's windows into the shared Gantt picture of
//! `trace::plot`: one row per core, a bar per window labelled with its task and job in the
//! cycle, the LET deadline of every window marked in red (past the cycle end when the
//! deadline lies in the next cycle), the logical releases in green, and the cycle end as a
//! dashed line. It must never judge the plan (that is `plan::verify`) nor panic on one:
//! unknown task indices print as `#n`.

use std::path::Path;

use takt::manifest::Deployment;
use takt::plan::Plan;

use crate::common::Failure;
use crate::trace::plot::{gantt_svg, Bar, Gantt, Mark, MarkKind};

/// Writes the Gantt chart of `mode` (default: the deployment's default mode) to `out`.
pub fn write_plan_svg(
    d: &Deployment,
    p: &Plan,
    mode: Option<&str>,
    out: &Path,
) -> Result<(), Failure> {
    let index = resolve_mode(d, mode)?;
    let g = plan_gantt(d, p, index)?;
    std::fs::write(out, gantt_svg(&g))
        .map_err(|e| Failure::run_failed(format!("{}: cannot write: {e}", out.display())))?;
    let name = d.modes.get(index).map_or("?", |m| m.name.as_str());
    eprintln!("wrote the tables of mode `{name}` to {}", out.display());
    Ok(())
}

/// The index of mode `mode`, or of the default mode.
fn resolve_mode(d: &Deployment, mode: Option<&str>) -> Result<usize, Failure> {
    match mode {
        None => Ok(d.default_mode),
        Some(name) => d.modes.iter().position(|m| m.name == name).ok_or_else(|| {
            let names: Vec<String> = d.modes.iter().map(|m| format!("`{}`", m.name)).collect();
            Failure::bad_input(format!(
                "{}: --mode {name}: no such mode; the manifest declares {}",
                d.source,
                names.join(", ")
            ))
        }),
    }
}

/// The Gantt chart of mode `index`'s tables.
pub fn plan_gantt(d: &Deployment, p: &Plan, index: usize) -> Result<Gantt, Failure> {
    let mode_name = d.modes.get(index).map_or("?", |m| m.name.as_str());
    let Some(mp) = p.modes.iter().find(|m| m.mode == index) else {
        return Err(Failure::run_failed(format!(
            "internal error: the plan has no tables for mode `{mode_name}`"
        )));
    };
    let task_name = |t: usize| d.tasks.get(t).map_or(format!("#{t}"), |s| s.name.clone());
    let mut g = Gantt {
        title: format!(
            "deployment `{}`, mode `{mode_name}`: static tables over one hyperperiod",
            d.name
        ),
        rows: mp
            .cores
            .iter()
            .map(|c| format!("core {}", c.core))
            .collect(),
        bars: Vec::new(),
        marks: Vec::new(),
        cycle_end_ns: Some(p.hyperperiod_ns),
        x_label: "time since the cycle start (red: LET deadline, green: release)".into(),
        legend: Vec::new(),
    };
    for (row, table) in mp.cores.iter().enumerate() {
        for w in &table.windows {
            g.bars.push(Bar {
                row,
                start_ns: w.start_ns,
                end_ns: w.start_ns.saturating_add(w.budget_ns),
                label: format!("{}#{}", task_name(w.task), w.job_in_cycle),
                colour: w.task,
            });
            g.marks.push(Mark {
                row,
                at_ns: w.deadline_ns,
                kind: MarkKind::Deadline,
            });
            g.marks.push(Mark {
                row,
                at_ns: w.release_ns,
                kind: MarkKind::Release,
            });
        }
    }
    let mut tasks: Vec<usize> = g.bars.iter().map(|b| b.colour).collect();
    tasks.sort_unstable();
    tasks.dedup();
    g.legend = tasks.into_iter().map(|t| (task_name(t), t)).collect();
    Ok(g)
}

//! The human-readable text of a plan.
//!
//! Owns: the layout of `takt plan`'s output. It must never judge the plan (that is
//! `verify`'s job) nor panic on one that is wrong: indices out of range print as `#n`, and
//! arithmetic saturates.

use std::fmt::Write as _;

use super::{excess_ns, Plan, REQUIREMENTS};
use crate::manifest::Deployment;
use crate::time::format_ns;

pub(super) fn render_text(d: &Deployment, p: &Plan) -> String {
    let mut out = String::with_capacity(4096);
    // Writing into a `String` cannot fail, so the `fmt::Result`s below are ignored.
    let h = p.hyperperiod_ns;
    let _ = writeln!(out, "deployment `{}` ({})", d.name, d.source);
    let _ = writeln!(out, "hyperperiod {}", format_ns(h));
    let task_name = |t: usize| d.tasks.get(t).map_or(format!("#{t}"), |s| s.name.clone());
    for mp in &p.modes {
        let name = d.modes.get(mp.mode).map_or("?", |m| m.name.as_str());
        let default = if mp.mode == d.default_mode {
            " (default)"
        } else {
            ""
        };
        let _ = writeln!(out, "\nmode `{name}`{default}");
        if mp.cores.is_empty() {
            let _ = writeln!(out, "  no task runs in this mode");
        }
        for table in &mp.cores {
            let busy_ns: u64 = table
                .windows
                .iter()
                .fold(0u64, |s, w| s.saturating_add(w.budget_ns));
            let _ = writeln!(
                out,
                "  core {}: utilization {}.{:04}% ({} busy per {}), {} windows",
                table.core,
                table.utilization_ppm / 10_000,
                table.utilization_ppm % 10_000,
                format_ns(busy_ns),
                format_ns(h),
                table.windows.len()
            );
            if let crate::manifest::Wake::Spin { margin_ns } = d.wake.for_core(table.core) {
                let total = (busy_ns.saturating_add(table.spin_ns) as u128 * 1_000_000
                    / h.max(1) as u128) as u64;
                let _ = writeln!(
                    out,
                    "    wake: spin {} before each window: up to {} spinning per {}, busy with it up to {}.{:04}%",
                    format_ns(margin_ns),
                    format_ns(table.spin_ns),
                    format_ns(h),
                    total / 10_000,
                    total % 10_000
                );
            }
            let width = table
                .windows
                .iter()
                .map(|w| task_name(w.task).len())
                .max()
                .unwrap_or(4)
                .max(4);
            let _ = writeln!(
                out,
                "    {:>12} {:>12}  {:<width$} {:>6} {:>12} {:>12} {:>12}",
                "start", "end", "task", "job", "release", "deadline", "slack"
            );
            for w in &table.windows {
                let end_ns = w.start_ns.saturating_add(w.budget_ns);
                // Slack to the instant the window must end by: the deadline, or the cycle
                // end when the deadline lies in the next cycle.
                let due_ns = w.deadline_ns.min(h);
                let slack = if end_ns <= due_ns {
                    format_ns(due_ns - end_ns)
                } else {
                    format!("-{}", format_ns(end_ns - due_ns))
                };
                let _ = writeln!(
                    out,
                    "    {:>12} {:>12}  {:<width$} {:>6} {:>12} {:>12} {:>12}",
                    format_ns(w.start_ns),
                    format_ns(end_ns),
                    task_name(w.task),
                    w.job_in_cycle,
                    format_ns(w.release_ns),
                    format_ns(w.deadline_ns),
                    slack
                );
            }
        }
    }
    if !p.channels.is_empty() {
        let _ = writeln!(out, "\nchannel sizing");
        for (i, s) in p.channels.iter().enumerate() {
            let topic = d
                .channels
                .get(i)
                .map_or(format!("#{i}"), |c| c.topic.clone());
            let _ = writeln!(
                out,
                "  `{topic}`: buffer {}, history {}, max_borrowed {}",
                s.buffer, s.history, s.max_borrowed
            );
        }
    }
    if !p.chains.is_empty() {
        let _ = writeln!(out, "\nchain bounds (LET, exact)");
        for b in &p.chains {
            let name = d
                .chains
                .get(b.chain)
                .map_or(format!("#{}", b.chain), |c| c.name.clone());
            match b.mode {
                Some(m) => {
                    let mode = d.modes.get(m).map_or("?", |s| s.name.as_str());
                    let _ = writeln!(
                        out,
                        "  `{name}` in mode `{mode}`: max data age {}, max reaction {}",
                        format_ns(b.max_data_age_ns),
                        format_ns(b.max_reaction_ns)
                    );
                    for r in REQUIREMENTS {
                        let bound_ns = r.bound_ns(b);
                        let verdict = match r.required_ns(d, b.chain) {
                            None => "no requirement".to_string(),
                            Some(req) => match excess_ns(bound_ns, req) {
                                None => format!("requirement {}: met", format_ns(req)),
                                Some(by) => format!(
                                    "requirement {}: exceeded by {}",
                                    format_ns(req),
                                    format_ns(by)
                                ),
                            },
                        };
                        let _ = writeln!(
                            out,
                            "    {} bound {} ({verdict})",
                            r.what(),
                            format_ns(bound_ns)
                        );
                    }
                }
                None => {
                    let _ = writeln!(out, "  `{name}`: no mode runs every task of the chain");
                    for r in REQUIREMENTS {
                        if let Some(req) = r.required_ns(d, b.chain) {
                            let _ = writeln!(
                                out,
                                "    {} requirement {}: met (the chain never runs whole)",
                                r.what(),
                                format_ns(req)
                            );
                        }
                    }
                }
            }
        }
    }
    out
}

//! `takt trace plot FILE... --svg DIR [--cycle N]`: SVG pictures of a run, and the Gantt
//! renderer `takt plan --svg` shares.
//!
//! Owns: the SVG files written into DIR:
//!
//! * `exec_<task>.svg`, `lateness_<task>.svg`: histograms of each task's execution time and
//!   release lateness;
//! * `chain_<name>_age.svg`, `chain_<name>_reaction.svg`: histograms of each declared
//!   chain's measured data age and reaction time, with the plan's bound as a red vertical
//!   line;
//! * `gantt.svg`: one hyperperiod (the first full one the trace holds, or `--cycle N`) with,
//!   per core, the planned windows (from each `Release`'s window start and budget, with the
//!   LET deadlines marked) and, right below, the actual executions (`Start`..`End`).
//!
//! Names are made file-safe (`trace::file_stem`); two names that collide get the task or
//! chain index appended. Drawing uses plotters' SVG backend without fonts: text is written
//! as SVG `<text>` and laid out by an estimate, so nothing here reads system fonts. Labels
//! from the file are stripped of control characters, which XML cannot hold. It must never
//! compute a figure (that is `takt_trace::analysis`); a task or chain without samples still gets its
//! file, saying so, so the set of files depends only on the header.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use takt::trace::ClockKind;

use takt_trace::analysis::{self, Analysis};

use super::{file_stem, load};
use crate::common::Failure;

const HIST_SIZE: (u32, u32) = (800, 480);
const HIST_BINS: usize = 40;
const GANTT_WIDTH: u32 = 1400;
const GANTT_ROW_PX: u32 = 60;
/// Left margin holding the row names.
const ROW_LABEL_PX: u32 = 170;
/// Height of one line of the Gantt chart's legend.
const LEGEND_LINE_PX: u32 = 24;

pub fn plot(paths: &[PathBuf], dir: &Path, cycle: Option<u64>) -> Result<(), Failure> {
    let loaded = load(paths)?;
    let a = loaded.analyze();
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::run_failed(format!("{}: cannot create: {e}", dir.display())))?;
    let mut files: Vec<(String, String)> = Vec::new();
    let deployment = loaded.deployment_name();

    let mut used = HashSet::new();
    for t in &a.tasks {
        let stem = unique_stem(&mut used, &t.name, t.task as usize);
        files.push((
            format!("exec_{stem}.svg"),
            histogram_svg(&Histo {
                title: format!("{deployment}: execution time of `{}`", t.name),
                x_label: "execution time",
                samples_ns: &t.execution_samples_ns,
                bound: t.budget_ns.map(|b| ("budget", b)),
            }),
        ));
        files.push((
            format!("lateness_{stem}.svg"),
            histogram_svg(&Histo {
                title: format!("{deployment}: release lateness of `{}`", t.name),
                x_label: "actual release - planned window start",
                samples_ns: &t.lateness_samples_ns,
                bound: None,
            }),
        ));
    }
    let mut used = HashSet::new();
    for (i, c) in a.chains.iter().enumerate() {
        let stem = unique_stem(&mut used, &c.name, i);
        files.push((
            format!("chain_{stem}_age.svg"),
            histogram_svg(&Histo {
                title: format!("{deployment}: data age of chain `{}`", c.name),
                x_label: "data age (logical)",
                samples_ns: &c.data_age_samples_ns,
                bound: c.bound_data_age_ns.map(|b| ("bound", b)),
            }),
        ));
        files.push((
            format!("chain_{stem}_reaction.svg"),
            histogram_svg(&Histo {
                title: format!("{deployment}: reaction time of chain `{}`", c.name),
                x_label: "reaction time (logical)",
                samples_ns: &c.reaction_samples_ns,
                bound: c.bound_reaction_ns.map(|b| ("bound", b)),
            }),
        ));
    }
    match trace_gantt(&loaded.header, &a, &deployment, cycle) {
        Ok(g) => files.push(("gantt.svg".into(), gantt_svg(&g))),
        Err(why) if cycle.is_some() => return Err(Failure::bad_input(why)),
        Err(why) => eprintln!("warning: no gantt.svg: {why}"),
    }

    for (name, svg) in &files {
        let path = dir.join(name);
        std::fs::write(&path, svg)
            .map_err(|e| Failure::run_failed(format!("{}: cannot write: {e}", path.display())))?;
    }
    println!("wrote {} SVG files to {}", files.len(), dir.display());
    for (name, _) in &files {
        println!("  {name}");
    }
    Ok(())
}

fn unique_stem(used: &mut HashSet<String>, name: &str, index: usize) -> String {
    let mut stem = file_stem(name);
    if !used.insert(stem.clone()) {
        stem = format!("{stem}_{index}");
        used.insert(stem.clone());
    }
    stem
}

/// Longest label drawn inside a chart (bar and row names), in characters.
const LABEL_CHARS: usize = 60;
/// Longest title or axis description, in characters.
const TITLE_CHARS: usize = 160;

/// Text fit for an SVG `<text>`: no control characters (XML 1.0 cannot carry most of them),
/// at most `max_chars` characters (a cut is marked with `~`).
pub fn clean_text(s: &str, max_chars: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(max_chars)
        .collect();
    if s.chars().count() > max_chars {
        out.push('~');
    }
    out
}

/// [`clean_text`] for labels inside a chart.
pub fn clean_label(s: &str) -> String {
    clean_text(s, LABEL_CHARS)
}

/// [`clean_text`] for titles and axis descriptions.
fn clean_title(s: &str) -> String {
    clean_text(s, TITLE_CHARS)
}

/// A unit for an axis covering up to `max_ns`: (ns per unit, name).
fn unit_for(max_ns: u64) -> (f64, &'static str) {
    if max_ns >= 10_000_000_000 {
        (1e9, "s")
    } else if max_ns >= 10_000_000 {
        (1e6, "ms")
    } else if max_ns >= 10_000 {
        (1e3, "us")
    } else {
        (1.0, "ns")
    }
}

struct Histo<'a> {
    title: String,
    x_label: &'a str,
    samples_ns: &'a [u64],
    /// A vertical line: its legend name and position.
    bound: Option<(&'static str, u64)>,
}

/// `(lo, hi)` edges and counts of `bins` equal bins over `[lo, hi]` (the last bin is
/// closed). Samples outside are ignored.
pub fn bin_counts(
    samples: &[u64],
    lo: f64,
    hi: f64,
    scale: f64,
    bins: usize,
) -> Vec<(f64, f64, u64)> {
    let bins = bins.max(1);
    let width = ((hi - lo) / bins as f64).max(f64::MIN_POSITIVE);
    let mut counts = vec![0u64; bins];
    for &s in samples {
        let v = s as f64 / scale;
        if v < lo || v > hi {
            continue;
        }
        let i = (((v - lo) / width) as usize).min(bins - 1);
        counts[i] += 1;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, c)| (lo + i as f64 * width, lo + (i + 1) as f64 * width, c))
        .collect()
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The histogram as SVG text. A drawing error (plotters reports none for in-memory SVG in
/// practice) yields a minimal SVG naming it, so a picture never silently goes missing.
fn histogram_svg(h: &Histo<'_>) -> String {
    match try_histogram_svg(h) {
        Ok(s) => s,
        Err(e) => error_svg(&h.title, &e),
    }
}

fn try_histogram_svg(h: &Histo<'_>) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, HIST_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let title = clean_title(&h.title);
        let (Some(&min), Some(&max)) = (h.samples_ns.iter().min(), h.samples_ns.iter().max())
        else {
            root.titled(&title, ("sans-serif", 20)).map_err(err)?;
            root.draw(&Text::new(
                "no samples in this trace".to_string(),
                (HIST_SIZE.0 as i32 / 2 - 100, HIST_SIZE.1 as i32 / 2),
                ("sans-serif", 18),
            ))
            .map_err(err)?;
            root.present().map_err(err)?;
            drop(root);
            return Ok(svg);
        };
        let top_ns = h.bound.map_or(max, |(_, b)| b.max(max));
        let (scale, unit) = unit_for(top_ns);
        let (lo, hi) = (min as f64 / scale, max as f64 / scale);
        let top = top_ns as f64 / scale;
        let bins = if hi > lo {
            bin_counts(h.samples_ns, lo, hi, scale, HIST_BINS)
        } else {
            // One value: one bar, a unit wide.
            vec![(lo - 0.5, lo + 0.5, h.samples_ns.len() as u64)]
        };
        let pad = ((top - lo) * 0.05).max(0.5);
        let x0 = bins[0].0 - pad;
        let x1 = top.max(bins[bins.len() - 1].1) + pad;
        // Integer counts on an integer axis, so the ticks are whole jobs.
        let peak = bins.iter().map(|b| b.2).max().unwrap_or(1).max(1);
        let y_top = peak + peak / 10 + 1;
        let mut chart = ChartBuilder::on(&root)
            .caption(&title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, 0u64..y_top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(format!(
                "{} [{unit}]  ({} samples)",
                h.x_label,
                h.samples_ns.len()
            ))
            .y_desc("jobs")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(
                bins.iter()
                    .filter(|b| b.2 > 0)
                    .map(|&(a, b, c)| Rectangle::new([(a, 0), (b, c)], BLUE.mix(0.6).filled())),
            )
            .map_err(err)?;
        if let Some((name, b)) = h.bound {
            let x = b as f64 / scale;
            chart
                .draw_series(LineSeries::new(
                    vec![(x, 0), (x, y_top)],
                    RED.stroke_width(2),
                ))
                .map_err(err)?
                .label(format!("{name} {}", super::report::human_ns(Some(b))))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A minimal valid SVG that says a picture could not be drawn.
fn error_svg(title: &str, why: &str) -> String {
    let escape = |s: &str| {
        clean_title(s)
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"100\"><text x=\"10\" y=\"30\">{}</text><text x=\"10\" y=\"60\">cannot draw: {}</text></svg>\n",
        escape(title),
        escape(why)
    )
}

/// A bar of a Gantt chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    pub row: usize,
    /// ns from the chart's origin.
    pub start_ns: u64,
    pub end_ns: u64,
    pub label: String,
    /// Picks the colour (e.g. the task index), so one task has one colour everywhere.
    pub colour: usize,
}

/// A vertical tick inside a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkKind {
    /// A LET deadline (red).
    Deadline,
    /// A logical release (green).
    Release,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Mark {
    pub row: usize,
    pub at_ns: u64,
    pub kind: MarkKind,
}

/// A timeline: rows top to bottom, bars and marks in ns from the origin.
#[derive(Clone, Debug, PartialEq)]
pub struct Gantt {
    pub title: String,
    pub rows: Vec<String>,
    pub bars: Vec<Bar>,
    pub marks: Vec<Mark>,
    /// A dashed-looking vertical line across all rows (e.g. the cycle end), ns from the origin.
    pub cycle_end_ns: Option<u64>,
    pub x_label: String,
    /// Names for the bar colours, drawn as a legend below the chart.
    pub legend: Vec<(String, usize)>,
}

/// The Gantt chart as SVG text (see [`histogram_svg`] on errors).
pub fn gantt_svg(g: &Gantt) -> String {
    match try_gantt_svg(g) {
        Ok(s) => s,
        Err(e) => error_svg(&g.title, &e),
    }
}

fn try_gantt_svg(g: &Gantt) -> Result<String, String> {
    let rows = g.rows.len().max(1);
    // One legend line holds about 8 entries.
    let legend_lines = g.legend.len().div_ceil(8) as u32;
    let height = 130 + GANTT_ROW_PX * rows as u32 + LEGEND_LINE_PX * legend_lines;
    let end_ns = g
        .bars
        .iter()
        .map(|b| b.end_ns)
        .chain(g.marks.iter().map(|m| m.at_ns))
        .chain(g.cycle_end_ns)
        .max()
        .unwrap_or(1)
        .max(1);
    let (scale, unit) = unit_for(end_ns);
    let x1 = end_ns as f64 / scale * 1.02;
    let n = rows as f64;
    // Row i (0 = top) spans y in [n - i - 1, n - i); plotters' y grows upwards.
    let y_of = |row: usize| n - row as f64 - 1.0;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (GANTT_WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (upper, lower) = root.split_vertically(height - LEGEND_LINE_PX * legend_lines);
        for (i, (name, colour)) in g.legend.iter().enumerate() {
            let x = ROW_LABEL_PX as i32 + (i % 8) as i32 * 150;
            let y = (i / 8) as i32 * LEGEND_LINE_PX as i32 + 4;
            lower
                .draw(&Rectangle::new(
                    [(x, y), (x + 14, y + 14)],
                    Palette99::pick(*colour).mix(0.85).filled(),
                ))
                .map_err(err)?;
            lower
                .draw(&Text::new(
                    clean_text(name, 18),
                    (x + 20, y + 1),
                    ("sans-serif", 13),
                ))
                .map_err(err)?;
        }
        let mut chart = ChartBuilder::on(&upper)
            .caption(clean_title(&g.title), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(ROW_LABEL_PX)
            .build_cartesian_2d(0f64..x1, 0f64..n)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc(format!("{} [{unit}]", clean_title(&g.x_label)))
            .draw()
            .map_err(err)?;
        // Row separators and names.
        for (i, name) in g.rows.iter().enumerate() {
            let y = y_of(i);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(0.0, y), (x1, y)],
                    BLACK.mix(0.15),
                )))
                .map_err(err)?;
            let (px, py) = chart.backend_coord(&(0.0, y + 0.5));
            root.draw(&Text::new(
                clean_label(name),
                (px - ROW_LABEL_PX as i32 + 8, py - 7),
                ("sans-serif", 14),
            ))
            .map_err(err)?;
        }
        // The smallest width a bar is drawn with: one pixel.
        let (p0, _) = chart.backend_coord(&(0.0, 0.0));
        let (p1, _) = chart.backend_coord(&(x1, 0.0));
        let ns_per_px = (x1 * scale) / f64::from((p1 - p0).max(1));
        for b in &g.bars {
            let y = y_of(b.row);
            let start = b.start_ns as f64;
            let end = (b.end_ns as f64).max(start + ns_per_px);
            let colour = Palette99::pick(b.colour).mix(0.85);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(start / scale, y + 0.2), (end / scale, y + 0.8)],
                    colour.filled(),
                )))
                .map_err(err)?;
            let label = clean_label(&b.label);
            let (bx0, by) = chart.backend_coord(&(start / scale, y + 0.5));
            let (bx1, _) = chart.backend_coord(&(end / scale, y + 0.5));
            // The layout estimate of 12 px text is about 6 px per character.
            if (bx1 - bx0) as usize > 6 * label.chars().count() + 4 {
                root.draw(&Text::new(label, (bx0 + 2, by - 6), ("sans-serif", 12)))
                    .map_err(err)?;
            }
        }
        for m in &g.marks {
            let y = y_of(m.row);
            let x = m.at_ns as f64 / scale;
            let (colour, (lo, hi)) = match m.kind {
                MarkKind::Deadline => (RED, (0.05, 0.95)),
                MarkKind::Release => (GREEN, (0.1, 0.3)),
            };
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x, y + lo), (x, y + hi)],
                    colour.stroke_width(2),
                )))
                .map_err(err)?;
        }
        if let Some(c) = g.cycle_end_ns {
            let x = c as f64 / scale;
            // Short segments: a dashed line that needs no dash feature.
            let segments = (0..(rows * 8)).step_by(2).map(|k| {
                let (a, b) = (k as f64 / 8.0, (k + 1) as f64 / 8.0);
                PathElement::new(vec![(x, a), (x, b)], BLACK.stroke_width(1))
            });
            chart.draw_series(segments).map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// The cycle the Gantt chart shows by default: the first whose start the trace covers
/// (the first job recorded was released at or before it), if the trace holds any job in
/// it; otherwise the cycle of the first job recorded.
pub fn default_cycle(a: &Analysis) -> Option<u64> {
    let h = a.hyperperiod_ns;
    if h == 0 {
        return None;
    }
    let first = a.jobs.iter().map(|j| j.release_ns).min()?;
    let full = first.div_ceil(h);
    let holds = |c: u64| a.jobs.iter().any(|j| j.release_ns / h == c);
    Some(if holds(full) { full } else { first / h })
}

/// The Gantt chart of one hyperperiod of a trace: per core a row of planned windows (with
/// the LET deadlines) and a row of actual executions.
fn trace_gantt(
    header: &takt::trace::TraceHeader,
    a: &Analysis,
    deployment: &str,
    cycle: Option<u64>,
) -> Result<Gantt, String> {
    let h = a.hyperperiod_ns;
    if h == 0 {
        return Err("the trace header gives no hyperperiod".into());
    }
    let (first, last) = match (
        a.jobs.iter().map(|j| j.release_ns / h).min(),
        a.jobs.iter().map(|j| j.release_ns / h).max(),
    ) {
        (Some(f), Some(l)) => (f, l),
        _ => return Err("the trace holds no job".into()),
    };
    let c = match cycle {
        Some(c) if (first..=last).contains(&c) => c,
        Some(c) => {
            return Err(format!(
                "--cycle {c}: the trace holds jobs of cycles {first} to {last} only"
            ))
        }
        None => default_cycle(a).unwrap_or(first),
    };
    let cycle_start = c.saturating_mul(h);
    let jobs: Vec<&analysis::Job> = a.jobs.iter().filter(|j| j.release_ns / h == c).collect();
    let mut cores: Vec<u8> = jobs.iter().map(|j| j.core).collect();
    cores.sort_unstable();
    cores.dedup();
    let row_of = |core: u8, actual: bool| {
        cores.iter().position(|&k| k == core).unwrap_or(0) * 2 + usize::from(actual)
    };
    let mut g = Gantt {
        title: format!(
            "{deployment}: cycle {c} ({} clock), planned windows and actual executions",
            takt_trace::report::Clock::from(a.clock).name()
        ),
        rows: cores
            .iter()
            .flat_map(|k| [format!("core {k} planned"), format!("core {k} actual")])
            .collect(),
        bars: Vec::new(),
        marks: Vec::new(),
        cycle_end_ns: Some(h),
        x_label: format!("time since the start of cycle {c}"),
        legend: Vec::new(),
    };
    let mut tasks: Vec<u32> = jobs.iter().map(|j| j.task).collect();
    tasks.sort_unstable();
    tasks.dedup();
    g.legend = tasks
        .iter()
        .map(|&t| (analysis::task_name(header, t), t as usize))
        .collect();
    for j in jobs {
        let name = analysis::task_name(header, j.task);
        if let (Some(w), Some(b)) = (j.window_start_ns, j.budget_ns) {
            let start = w.saturating_sub(cycle_start);
            g.bars.push(Bar {
                row: row_of(j.core, false),
                start_ns: start,
                end_ns: start.saturating_add(b),
                label: name.clone(),
                colour: j.task as usize,
            });
        }
        if let Some(t) = header.tasks.get(j.task as usize) {
            g.marks.push(Mark {
                row: row_of(j.core, false),
                at_ns: j
                    .release_ns
                    .saturating_add(t.let_ns)
                    .saturating_sub(cycle_start),
                kind: MarkKind::Deadline,
            });
        }
        if let (Some(s), Some(e)) = (j.start_ns, j.end_ns) {
            let origin = a.epoch_ns.saturating_add(cycle_start);
            g.bars.push(Bar {
                row: row_of(j.core, true),
                start_ns: s.saturating_sub(origin),
                end_ns: e.saturating_sub(origin),
                label: name,
                colour: j.task as usize,
            });
        }
    }
    if a.clock == ClockKind::Sim {
        g.x_label
            .push_str(" (simulated clock: actual executions take only injected jitter)");
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_cover_the_range_and_count_every_sample() {
        let samples = [0u64, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        let bins = bin_counts(&samples, 0.0, 10.0, 1.0, 5);
        assert_eq!(bins.len(), 5);
        assert_eq!(bins.iter().map(|b| b.2).sum::<u64>(), 11);
        assert_eq!(bins[4].2, 3, "the last bin is closed: 8, 9, 10");
        assert_eq!((bins[0].0, bins[4].1), (0.0, 10.0));
        // Scaled: 2_500 ns in us lands in the bin of 2.5.
        let bins = bin_counts(&[2_500], 0.0, 5.0, 1e3, 2);
        assert_eq!((bins[0].2, bins[1].2), (0, 1));
    }

    #[test]
    fn labels_lose_control_characters() {
        assert_eq!(clean_label("a\u{1}b\nc"), "a?b?c");
        assert_eq!(clean_label(&"x".repeat(70)).chars().count(), 61);
        assert_eq!(clean_text("abc", 2), "ab~");
    }

    #[test]
    fn units_follow_the_range() {
        assert_eq!(unit_for(500).1, "ns");
        assert_eq!(unit_for(50_000).1, "us");
        assert_eq!(unit_for(40_000_000).1, "ms");
        assert_eq!(unit_for(20_000_000_000).1, "s");
    }

    #[test]
    fn svgs_are_drawn_for_empty_single_and_spread_samples() {
        for samples in [
            vec![],
            vec![5_000u64; 3],
            (0..1000u64).map(|v| v * 997).collect(),
        ] {
            let svg = histogram_svg(&Histo {
                title: "t <&> \u{2}".into(),
                x_label: "x",
                samples_ns: &samples,
                bound: Some(("bound", 600_000)),
            });
            assert!(svg.starts_with("<svg"), "{svg}");
            assert!(!svg.contains('\u{2}'));
        }
        let g = Gantt {
            title: "g".into(),
            rows: vec!["core 0 planned".into(), "core 0 actual".into()],
            bars: vec![Bar {
                row: 0,
                start_ns: 0,
                end_ns: 1_000_000,
                label: "radar".into(),
                colour: 1,
            }],
            marks: vec![Mark {
                row: 0,
                at_ns: 2_000_000,
                kind: MarkKind::Deadline,
            }],
            cycle_end_ns: Some(10_000_000),
            x_label: "t".into(),
            legend: vec![("radar".into(), 1)],
        };
        let svg = gantt_svg(&g);
        assert!(
            svg.contains("radar") && svg.contains("core 0 planned"),
            "{svg}"
        );
    }
}

//! `takt plan MANIFEST [--svg FILE [--mode NAME]]`: per-core tables, utilization,
//! hyperperiod and chain bounds against their requirements; with `--svg`, one mode's tables
//! as a Gantt chart too. Exit code 2 when a chain misses a requirement.

use std::path::Path;

use crate::common::{self, Failure};

pub fn plan(path: &Path, svg: Option<&Path>, mode: Option<&str>) -> Result<(), Failure> {
    let d = common::load_apps(path)?.d;
    // Judged after printing: a plan that misses a chain requirement is shown, with the
    // bounds next to the requirements, then refused with exit code 2.
    let p = common::plan_without_requirements(&d)?;
    // Drawn before the text, so a bad --mode fails before anything is printed.
    if let Some(out) = svg {
        crate::plan_svg::write_plan_svg(&d, &p, mode, out)?;
    }
    print!("{}", takt::plan::render_text(&d, &p));
    println!("verified: every table passed the independent verifier");
    common::requirements_met(&d, &p)
}

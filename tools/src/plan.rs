//! `takt plan MANIFEST [--svg FILE [--mode NAME]]`: per-core tables, utilization,
//! hyperperiod and chain bounds; with `--svg`, one mode's tables as a Gantt chart too.

use std::path::Path;

use crate::common::{self, Failure};

pub fn plan(path: &Path, svg: Option<&Path>, mode: Option<&str>) -> Result<(), Failure> {
    let d = common::load_apps(path)?.d;
    let p = common::plan_verified(&d)?;
    // Drawn before the text, so a bad --mode fails before anything is printed.
    if let Some(out) = svg {
        crate::plan_svg::write_plan_svg(&d, &p, mode, out)?;
    }
    print!("{}", takt::plan::render_text(&d, &p));
    println!("verified: every table passed the independent verifier");
    Ok(())
}

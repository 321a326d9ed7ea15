//! `takt plan MANIFEST`: per-core tables, utilization, hyperperiod and chain bounds.

use std::path::Path;

use crate::common::{self, Failure};

pub fn plan(path: &Path) -> Result<(), Failure> {
    let registry = common::registry();
    let d = common::load(path, &registry)?;
    let p = common::plan_verified(&d)?;
    print!("{}", takt::plan::render_text(&d, &p));
    println!("verified: every table passed the independent verifier");
    Ok(())
}

//! `takt check MANIFEST`: validate, print every error, exit 2 on any.
//!
//! It also plans: a manifest can be well-formed yet describe a deployment that cannot run,
//! because the task set is not schedulable or a chain's exact bound misses its
//! `max_data_age` or `max_reaction`. `check` must not call such a deployment ok when `run`
//! would refuse it.

use std::path::Path;

use crate::common::{self, Failure};

pub fn check(path: &Path) -> Result<(), Failure> {
    let d = common::load_apps(path)?.d;
    common::plan_verified(&d)?;
    println!(
        "{}: ok: deployment `{}`, {} apps, {} tasks, {} channels, {} chains, {} modes, hyperperiod {}",
        path.display(),
        d.name,
        d.apps.len(),
        d.tasks.len(),
        d.channels.len(),
        d.chains.len(),
        d.modes.len(),
        takt::time::format_ns(d.hyperperiod_ns)
    );
    Ok(())
}

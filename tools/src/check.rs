//! `takt check MANIFEST`: validate, print every error, exit 2 on any.

use std::path::Path;

use crate::common::{self, Failure};

pub fn check(path: &Path) -> Result<(), Failure> {
    let d = common::load_apps(path)?.d;
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

//! Part 5, simulated-time speed: the ACC demo in `--clock sim` for 3 s of logical time.
//!
//! Owns: loading `config/acc.toml` against the ACC registry, planning and verifying it as
//! `takt run` does, and one simulated run. Two speedups, both logical time over physical
//! time: `sim_speedup` over the table walk (`RunReport.wall_ns`: how fast simulated time
//! runs), and `sim_speedup_with_setup` over the whole `dispatch::run` call, building tasks
//! and opening ports included (what an integrator waits for a 3 s run; the setup is a
//! fixed cost that does not grow with the logical duration). Both are in the table with the
//! target. A manifest that does not load or plan yet is a SKIPPED line, not a failure: the
//! ACC demo is written alongside this tool.

use std::time::{Duration, Instant};

use takt::dispatch::{ClockKind, RunOptions};

use super::report::{fmt_ns, Report, Row};
use super::rig;
use super::Env;
use crate::common;

pub const PART: &str = "sim";

pub const KEYS: &[&str] = &[
    "sim_speedup",
    "sim_speedup_with_setup",
    "sim_logical_ms",
    "sim_wall_ms",
    "sim_walk_ms",
];

const LOGICAL_NS: u64 = 3_000_000_000;
const LIMIT: Duration = Duration::from_secs(120);

/// The first line of a (possibly multi-line) error.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

pub fn run(env: &Env, r: &mut Report) {
    let path = &env.acc_manifest;
    env.step(format!("loading {}", path.display()));
    let registry = common::registry();
    let d = match common::load(path, &registry) {
        Ok(d) => d,
        Err(f) => {
            env.skip(
                r,
                PART,
                format!(
                    "the ACC manifest {} does not load (yet): {}",
                    path.display(),
                    first_line(&f.message)
                ),
            );
            return;
        }
    };
    let plan = match common::plan_verified(&d) {
        Ok(p) => p,
        Err(f) => {
            env.skip(
                r,
                PART,
                format!(
                    "the ACC manifest {} does not plan (yet): {}",
                    path.display(),
                    first_line(&f.message)
                ),
            );
            return;
        }
    };
    env.step("ACC demo, 3 s of simulated time");
    let opts = RunOptions {
        clock: ClockKind::Sim,
        duration_ns: LOGICAL_NS,
        namespace: Some(format!("{}-acc", env.namespace)),
        ..RunOptions::default()
    };
    let started = Instant::now();
    let report = match rig::run_bounded(d, plan, registry, opts, LIMIT, |_| {}) {
        Ok(report) => report,
        Err(e) => {
            env.fail(r, PART, format!("the simulated ACC run: {e}"));
            return;
        }
    };
    let wall_ns = started.elapsed().as_nanos() as f64;
    let logical_ns = (report.cycles * report.hyperperiod_ns) as f64;
    let walk_ns = report.wall_ns as f64;
    r.set("sim_logical_ms", logical_ns / 1e6);
    r.set("sim_wall_ms", wall_ns / 1e6);
    r.set("sim_walk_ms", walk_ns / 1e6);
    let with_setup = (wall_ns > 0.0).then(|| logical_ns / wall_ns);
    let speedup = (walk_ns > 0.0).then(|| logical_ns / walk_ns);
    if let Some(s) = speedup {
        r.set("sim_speedup", s);
    }
    if let Some(s) = with_setup {
        r.set("sim_speedup_with_setup", s);
    }
    let x = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}x"));
    r.row(
        Row::new(
            PART,
            format!(
                "ACC {} logical, table walk {}",
                fmt_ns(logical_ns),
                fmt_ns(walk_ns)
            ),
        )
        .takt(x(speedup))
        .at_least(speedup, 100.0, ">= 100x real time"),
    );
    r.row(
        Row::new(
            PART,
            format!("ACC with setup (tasks, ports): {}", fmt_ns(wall_ns)),
        )
        .takt(x(with_setup))
        .at_least(with_setup, 100.0, ">= 100x real time"),
    );
}

//! Part 5, simulated-time speed: the ACC demo in `--clock sim` for 3 s of logical time.
//!
//! Owns: one `takt run --clock sim` of `config/acc.toml` through this very binary, as an
//! integrator runs it: the apps' executables started by the supervisor, their catalogs
//! read, tasks built, ports opened, and simulated time walked in lockstep by the three app
//! processes. Two speedups, both logical time over physical time: `sim_speedup` over the
//! run's own wall time (from the summary line: from the epoch to the last app's end), and
//! `sim_speedup_with_setup` over the whole command (what an integrator waits for). takt
//! links no app, so there is no in-process variant any more. A manifest whose apps are not
//! built is a SKIPPED line, not a failure.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::report::{fmt_ns, Report, Row};
use super::Env;

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

pub fn run(env: &Env, r: &mut Report) {
    let path = &env.acc_manifest;
    env.step(format!(
        "ACC demo {}, 3 s of simulated time",
        path.display()
    ));
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return env.fail(r, PART, format!("cannot find the takt binary: {e}")),
    };
    let sock = std::env::temp_dir().join(format!("{}-sim.sock", env.namespace));
    let started = Instant::now();
    let child = Command::new(exe)
        .arg("run")
        .arg(path)
        .args(["--clock", "sim", "--duration", "3s", "--quiet", "--control"])
        .arg(&sock)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => return env.fail(r, PART, format!("cannot start takt run: {e}")),
    };
    // The end of the run is seen when it happens, not at the next poll.
    let Some(out) = takt::process::finish_within(child, LIMIT, |c| c.wait_with_output()) else {
        return env.fail(
            r,
            PART,
            format!("the simulated run did not end within {LIMIT:?}"),
        );
    };
    let wall_ns = started.elapsed().as_nanos() as f64;
    let out = match out {
        Ok(o) => o,
        Err(e) => return env.fail(r, PART, format!("takt run: {e}")),
    };
    if out.status.code() == Some(2) {
        let text = String::from_utf8_lossy(&out.stderr);
        return env.skip(
            r,
            PART,
            format!(
                "the ACC manifest does not load (are the apps built? `cargo build --release`): {}",
                text.lines().next().unwrap_or("")
            ),
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let walk_s = stdout.lines().find_map(|l| {
        let rest = l.split("wall time ").nth(1)?;
        rest.trim().strip_suffix('s')?.parse::<f64>().ok()
    });
    let Some(walk_s) = walk_s.filter(|_| out.status.success()) else {
        return env.fail(
            r,
            PART,
            format!(
                "the simulated ACC run failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ),
        );
    };
    let logical_ns = LOGICAL_NS as f64;
    let walk_ns = walk_s * 1e9;
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
                "ACC {} logical, 3 processes in lockstep, run {}",
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
            format!(
                "ACC with setup (processes, catalogs, tasks, ports): {}",
                fmt_ns(wall_ns)
            ),
        )
        .takt(x(with_setup))
        .at_least(with_setup, 100.0, ">= 100x real time"),
    );
}

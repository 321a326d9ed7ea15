//! A latency check on top of takt-trace, as a CI job might run it after a traced run:
//!
//! ```sh
//! cargo run --release -p takt-trace --example latency_check -- run.trc.sensing run.trc.planning run.trc.vehicle
//! ```
//!
//! prints each task's worst release lateness and each chain's worst data age against the
//! plan's bound, and exits 1 when a release was missed or a chain exceeded its bound
//! (2 when the files cannot be read). It depends on takt-trace only: no takt CLI.
#![deny(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    let report = match takt_trace::report(&files) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("latency_check: {e}");
            return ExitCode::from(2);
        }
    };
    for t in &report.tasks {
        let missed = t.releases.as_ref().map_or(0, |r| r.missed);
        println!(
            "task {:<12} lateness max {:>12}  missed releases {missed}",
            t.name,
            ns(t.lateness_ns_max)
        );
    }
    for c in &report.chains {
        println!(
            "chain {:<16} data age max {:>12}  bound {:>12}{}",
            c.name,
            ns(c.measured.data_age_ns_max),
            ns(c.bound.bound_data_age_ns),
            if c.exceeds_bound { "  EXCEEDED" } else { "" }
        );
    }
    let bad = report.releases.missed > 0 || report.chains.iter().any(|c| c.exceeds_bound);
    if bad {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `123 ns`, or `-` when there was nothing to measure.
fn ns(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v} ns"))
}

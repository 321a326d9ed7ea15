//! `takt run`: the supervisor side of the CLI. Gathers what every app process of the run
//! shares ([`HostRun`]), hands the run to `takt::lifecycle::supervise`, and prints the same summary and
//! `digest:` line as the single-process path, plus one line per app.

use std::io::Write;

use takt::dispatch::{self, ClockKind};
use takt::lifecycle::{self, HostCommand, HostRun, SuperviseOptions};
use takt::plan::Plan;
use takt::time::format_ns;

use crate::common::{Failure, Loaded};
use crate::run::{print_summary, RunArgs};

/// How long every app process may take to build its tasks and report ready.
const STARTUP_TIMEOUT_NS: u64 = 10_000_000_000;
/// From the last app ready to the first release: room for every process to get the epoch
/// over its socket and put its dispatchers to sleep.
const EPOCH_MARGIN_NS: u64 = 100_000_000;
/// Hyperperiods a new app version stands by (ports connected, history received, threads
/// pinned) before a hot swap.
const WARM_UP_CYCLES: u64 = 5;

pub fn supervise(
    args: &RunArgs,
    loaded: &Loaded,
    plan: &Plan,
    duration_ns: u64,
    clock: ClockKind,
) -> Result<(), Failure> {
    let d = &loaded.d;
    if clock == ClockKind::Real {
        check_realtime(args, d)?;
    }
    supervise_checked(args, loaded, plan, duration_ns, clock)
}

fn check_realtime(args: &RunArgs, d: &takt::manifest::Deployment) -> Result<(), Failure> {
    if let Err(reason) = dispatch::probe_realtime(d.priority) {
        if !args.allow_non_rt {
            return Err(Failure::run_failed(format!(
                "takt run: real-time scheduling is not available: {reason}.\n\
                 Run as root (or with CAP_SYS_NICE), or pass --allow-non-rt to run at normal priority without timing guarantees."
            )));
        }
        eprintln!("WARNING: NOT REAL-TIME: {reason}");
    }
    Ok(())
}

fn supervise_checked(
    args: &RunArgs,
    loaded: &Loaded,
    plan: &Plan,
    duration_ns: u64,
    clock: ClockKind,
) -> Result<(), Failure> {
    let d = &loaded.d;
    let program = std::env::current_exe()
        .map_err(|e| Failure::run_failed(format!("takt run: cannot find the takt binary: {e}")))?;
    let manifest_hash = takt::manifest::hash_file(&args.manifest).map_err(|e| {
        Failure::bad_input(format!("{}: cannot read: {e}", args.manifest.display()))
    })?;
    // What every app process shares; the supervisor writes it with the deployment and the
    // plan into the run's host plan, so no app process reads the manifest or plans.
    let run = HostRun {
        catalogs: loaded.catalogs.clone(),
        // One namespace per run, so two runs of the same manifest never share a topic.
        namespace: format!("{}-{}", d.name, std::process::id()),
        sim: clock == ClockKind::Sim,
        duration_ns,
        allow_non_rt: args.allow_non_rt,
        inject_jitter: args.inject_jitter,
        trace: args.trace.clone(),
        manifest_hash,
    };
    let ota = match args.ota_dir.clone().or_else(|| d.ota.state_dir.clone()) {
        Some(state_dir) => {
            let mut trusted = takt::ota::bundle::TrustedKeys::new();
            crate::ota::add_manifest_keys(&mut trusted, d)?;
            if trusted.is_empty() {
                eprintln!(
                    "takt run: warning: {}: [ota] trusted_keys is empty, so every bundle will be refused",
                    d.source
                );
            }
            Some(lifecycle::OtaOptions {
                state_dir,
                trusted,
                catalog: loaded.catalog.clone(),
                layouts: loaded.catalogs.layouts(),
                warm_up_cycles: WARM_UP_CYCLES,
            })
        }
        None => None,
    };
    let opts = SuperviseOptions {
        // A simulated run is a batch job, and several may run at once (tests, CI): each gets
        // its own socket unless one is named. A real-time run uses the well-known one.
        control_path: args.control.clone().unwrap_or_else(|| match clock {
            ClockKind::Real => lifecycle::default_control_path(),
            ClockKind::Sim => std::env::temp_dir().join(format!(
                "takt-sim-{}-{}.sock",
                d.name,
                std::process::id()
            )),
        }),
        duration_ns,
        startup_timeout_ns: STARTUP_TIMEOUT_NS,
        epoch_margin_ns: EPOCH_MARGIN_NS,
        host: HostCommand {
            program,
            subcommand: Vec::new(),
            run,
        },
        ota,
        clock,
    };
    let hosted: Vec<&str> = d
        .apps
        .iter()
        .enumerate()
        .filter(|(i, _)| d.tasks.iter().any(|t| t.app == *i))
        .map(|(_, a)| a.name.as_str())
        .collect();
    eprintln!(
        "takt run: deployment `{}`: supervising {} app processes {:?}, hyperperiod {}, {} hyperperiods, mode {}, control socket {}",
        d.name,
        hosted.len(),
        hosted,
        format_ns(d.hyperperiod_ns),
        duration_ns.div_ceil(d.hyperperiod_ns),
        d.modes[d.default_mode].name,
        opts.control_path.display()
    );
    let outcome = lifecycle::supervise(d, plan, &opts)
        .map_err(|e| Failure::run_failed(format!("takt run: {e}")))?;
    for w in &outcome.report.warnings {
        eprintln!("warning: {w}");
    }
    for (app, t) in &outcome.traces {
        eprintln!("trace ({app}): {t}");
    }
    {
        let mut out = std::io::stdout().lock();
        for a in &outcome.apps {
            let _ = writeln!(
                out,
                "app: {} state={} restarts={} overruns={} missed={} faults={}",
                a.name,
                a.state.as_str(),
                a.restarts,
                a.overruns,
                a.missed,
                a.faults
            );
        }
    }
    print_summary(d, &outcome.report);
    match outcome.failure {
        Some(f) => Err(Failure::run_failed(format!("takt run: {f}"))),
        None => Ok(()),
    }
}

//! `takt run MANIFEST`: validate against the apps' catalogs, plan, verify, gather what every
//! app process of the run shares ([`HostRun`]), hand the run to
//! `takt::lifecycle::supervise` (one process per app, real or simulated time), and print one
//! line per app, the summary and the `digest:` line.

use std::io::Write;
use std::path::PathBuf;

use takt::dispatch::{self, ClockKind, Quantiles, RunReport};
use takt::lifecycle::{self, HostCommand, HostRun, SuperviseOptions};
use takt::plan::Plan;
use takt::time::{format_ns, parse_duration_ns};

use crate::cli::ClockArg;
use crate::common::{self, Failure, Loaded};

pub struct RunArgs {
    pub manifest: PathBuf,
    pub duration: String,
    pub clock: ClockArg,
    pub allow_non_rt: bool,
    pub inject_jitter: Option<u64>,
    pub trace: Option<PathBuf>,
    pub single_process: bool,
    pub control: Option<PathBuf>,
    pub ota_dir: Option<PathBuf>,
}

/// Longest run accepted from the command line: one day.
const MAX_DURATION_NS: u64 = 86_400_000_000_000;

pub fn run(args: &RunArgs) -> Result<(), Failure> {
    let duration_ns = parse_duration_ns(&args.duration)
        .map_err(|e| Failure::bad_input(format!("--duration: {e}")))?;
    if duration_ns == 0 || duration_ns > MAX_DURATION_NS {
        return Err(Failure::bad_input(format!(
            "--duration: `{}` is out of range; allowed is more than 0 and at most 24h (86400s)",
            args.duration
        )));
    }
    let clock = match args.clock {
        ClockArg::Real => ClockKind::Real,
        ClockArg::Sim => ClockKind::Sim,
    };
    if args.single_process {
        return Err(Failure::bad_input(
            "--single-process: takt links no app, so it runs every app in its own executable's process; a single-process run is for programs that link every task themselves (takt::dispatch::run, as the verification suite does). Drop --single-process; --clock sim runs the apps in simulated time, in lockstep",
        ));
    }
    let loaded = common::load_apps(&args.manifest)?;
    let plan = common::plan_verified(&loaded.d)?;
    if clock == ClockKind::Sim && args.ota_dir.is_some() {
        return Err(Failure::bad_input(
            "--ota-dir: over-the-air updates need a real-time run; drop --clock sim",
        ));
    }
    supervise(args, &loaded, &plan, duration_ns, clock)
}

/// How long every app process may take to build its tasks and report ready.
const STARTUP_TIMEOUT_NS: u64 = 10_000_000_000;
/// From the last app ready to the first release: room for every process to get the epoch
/// over its socket and put its dispatchers to sleep.
const EPOCH_MARGIN_NS: u64 = 100_000_000;
/// Hyperperiods a new app version stands by (ports connected, history received, threads
/// pinned) before a hot swap.
const WARM_UP_CYCLES: u64 = 5;

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

/// Starts one process per app under the supervisor and prints what the run did.
fn supervise(
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

fn q(qs: &Quantiles) -> String {
    format!(
        "{}/{}/{}/{}",
        format_ns(qs.min_ns),
        format_ns(qs.p50_ns),
        format_ns(qs.p99_ns),
        format_ns(qs.max_ns)
    )
}

pub(crate) fn print_summary(d: &takt::manifest::Deployment, r: &RunReport) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "deployment `{}`: clock {}{}, {} hyperperiods of {}, wall time {:.3}s",
        d.name,
        r.clock,
        if r.clock == ClockKind::Real {
            if r.realtime {
                format!(" (SCHED_FIFO {}, pinned)", d.priority)
            } else {
                " (NOT real-time: normal priority)".to_string()
            }
        } else {
            String::new()
        },
        r.cycles,
        format_ns(r.hyperperiod_ns),
        r.wall_ns as f64 / 1e9
    );
    // The task column fits the longest task name (at least 12), so rows stay aligned
    // whatever a deployment calls its tasks.
    let w = r.tasks.iter().map(|t| t.name.len()).fold(12, usize::max);
    let _ = writeln!(
        out,
        "{:<w$} {:>4} {:>6} {:>5} {:>7} {:>5} {:>5}  {:<34} {:<34}",
        "task",
        "core",
        "jobs",
        "skip",
        "overrun",
        "miss",
        "fault",
        "release lateness min/p50/p99/max",
        "execution min/p50/p99/max"
    );
    for t in &r.tasks {
        let _ = writeln!(
            out,
            "{:<w$} {:>4} {:>6} {:>5} {:>7} {:>5} {:>5}  {:<34} {:<34}",
            t.name,
            t.core,
            t.jobs,
            t.skipped,
            t.overruns,
            t.deadline_misses,
            t.faults.jobs,
            q(&t.lateness),
            q(&t.execution)
        );
    }
    let overruns: u64 = r.tasks.iter().map(|t| t.overruns).sum();
    let misses: u64 = r.tasks.iter().map(|t| t.deadline_misses).sum();
    let _ = writeln!(out, "overruns: {overruns}, deadline misses: {misses}");
    // Who caused them (see takt::dispatch::attribution): only takt's count against takt.
    let sum = |f: fn(&takt::dispatch::TaskStats) -> u64| r.tasks.iter().map(f).sum::<u64>();
    let (p_over, p_miss, p_skip) = (
        sum(|t| t.platform.overruns),
        sum(|t| t.platform.deadline_misses),
        sum(|t| t.platform.skipped),
    );
    let skips = sum(|t| t.skipped);
    let _ = writeln!(
        out,
        "attribution: platform {} (overruns {p_over}, deadline misses {p_miss}, skips {p_skip}), takt/task {} (overruns {}, deadline misses {}, skips {}); longest time off the CPU in one job {}",
        p_over + p_miss + p_skip,
        (overruns + misses + skips).saturating_sub(p_over + p_miss + p_skip),
        overruns - p_over,
        misses - p_miss,
        skips - p_skip,
        format_ns(r.tasks.iter().map(|t| t.off_cpu_max_ns).max().unwrap_or(0)),
    );
    let (spun, spin_ns) = (sum(|t| t.spun_jobs), sum(|t| t.spin_ns));
    if let Some(mean_ns) = spin_ns.checked_div(spun) {
        let _ = writeln!(
            out,
            "wake: spun before {spun} of {} jobs, {} in total ({} per spun job on average)",
            sum(|t| t.jobs),
            format_ns(spin_ns),
            format_ns(mean_ns)
        );
    }
    // Jobs that reported a fault (`StepContext::fault`), with the codes, per task.
    for t in r.tasks.iter().filter(|t| t.faults.jobs > 0) {
        let code = |c: Option<u16>| c.map_or("-".to_string(), |c| c.to_string());
        let _ = writeln!(
            out,
            "faults: {} {} job(s) ({} report(s)), first code {}, last code {}",
            t.name,
            t.faults.jobs,
            t.faults.reports,
            code(t.faults.first_code),
            code(t.faults.last_code)
        );
    }
    if r.mode_history.len() > 1 {
        let modes: Vec<String> = r
            .mode_history
            .iter()
            .map(|(c, m)| format!("{m}@{c}"))
            .collect();
        let _ = writeln!(out, "modes: {}", modes.join(" -> "));
    }
    for (task, rep) in &r.reports {
        for (k, v) in &rep.outcome {
            let _ = writeln!(out, "outcome: {task}.{k} = {v}");
        }
    }
    let _ = writeln!(out, "digest: {}", r.digest_hex());
}

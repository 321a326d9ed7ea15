//! `takt run MANIFEST`: validate, plan, verify, run, print the summary and the `digest:`
//! line. This file is the single-process path (`--single-process`, and `--clock sim`
//! always); `--multi-process` hands the run to the supervisor in `supervise.rs`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use takt::dispatch::{
    self, ClockKind, Jitter, Quantiles, RunControl, RunOptions, RunReport, TraceOptions,
};
use takt::time::{format_ns, parse_duration_ns};

use crate::cli::ClockArg;
use crate::common::{self, Failure};

pub struct RunArgs {
    pub manifest: PathBuf,
    pub duration: String,
    pub clock: ClockArg,
    pub allow_non_rt: bool,
    pub inject_jitter: Option<u64>,
    pub quiet: bool,
    pub trace: Option<PathBuf>,
    pub single_process: bool,
    pub multi_process: bool,
    pub control: Option<PathBuf>,
    pub ota_dir: Option<PathBuf>,
}

/// Whether `takt run` supervises one process per app when neither --single-process nor
/// --multi-process is given: it does, as a vehicle deployment would run.
const MULTI_PROCESS_BY_DEFAULT: bool = true;

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
    let multi = !args.single_process && (args.multi_process || MULTI_PROCESS_BY_DEFAULT);
    if multi && clock == ClockKind::Real {
        let loaded = common::load_apps(&args.manifest)?;
        let plan = common::plan_verified(&loaded.d)?;
        return crate::supervise::supervise(args, &loaded, &plan, duration_ns);
    }
    let registry = common::registry();
    let d = common::load(&args.manifest, &registry)?;
    let plan = common::plan_verified(&d)?;
    if args.ota_dir.is_some() {
        return Err(Failure::bad_input(
            "--ota-dir: over-the-air updates need the supervised run (one process per app, real clock); drop --single-process and --clock sim",
        ));
    }
    if args.multi_process && clock == ClockKind::Sim {
        eprintln!("takt run: --clock sim runs in one process (simulated time is one thread)");
    }
    let opts = RunOptions {
        clock,
        duration_ns,
        allow_non_rt: args.allow_non_rt,
        jitter: args.inject_jitter.map(|seed| Jitter {
            seed,
            max_fraction_of_budget: 0.5,
        }),
        // One namespace per run, so two runs of the same manifest never share a topic.
        namespace: Some(format!("{}-{}", d.name, std::process::id())),
        trace: match &args.trace {
            Some(path) => {
                let hash = takt::manifest::hash_file(&args.manifest).map_err(|e| {
                    Failure::bad_input(format!("{}: cannot read: {e}", args.manifest.display()))
                })?;
                let mut t = TraceOptions::new(path, hash);
                t.app_name = d.name.clone();
                Some(t)
            }
            None => None,
        },
        ..RunOptions::default()
    };
    if clock == ClockKind::Real {
        if let Err(reason) = dispatch::probe_realtime(opts.priority.unwrap_or(d.priority)) {
            if !args.allow_non_rt {
                return Err(Failure::run_failed(format!(
                    "takt run: real-time scheduling is not available: {reason}.\n\
                     Run as root (or with CAP_SYS_NICE), or pass --allow-non-rt to run at normal priority without timing guarantees."
                )));
            }
            eprintln!("WARNING: NOT REAL-TIME: {reason}");
            eprintln!("WARNING: running at normal priority (--allow-non-rt): releases may be late, deadlines may be missed, and the digest may differ from a real-time run.");
        }
    }
    let control = RunControl::new(d.default_mode);
    let cycles = duration_ns.div_ceil(d.hyperperiod_ns);
    let mut cores: Vec<usize> = d.tasks.iter().map(|t| t.core).collect();
    cores.sort_unstable();
    cores.dedup();
    eprintln!(
        "takt run: deployment `{}`: {} tasks on cores {:?}, hyperperiod {}, {} hyperperiods, clock {}, mode {}",
        d.name,
        d.tasks.len(),
        cores,
        format_ns(d.hyperperiod_ns),
        cycles,
        clock,
        d.modes[d.default_mode].name
    );

    // SIGINT / SIGTERM end the run at the next hyperperiod boundary (graceful stop).
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, std::sync::Arc::clone(&interrupted)) {
            eprintln!("warning: cannot install the handler for signal {sig}: {e}");
        }
    }
    let report = std::thread::scope(|s| {
        let worker = s.spawn(|| dispatch::run(&d, &plan, &registry, &opts, &control));
        let bar = if args.quiet {
            ProgressBar::hidden()
        } else {
            let b = ProgressBar::new(cycles);
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} hyperperiods {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        };
        // Poll briefly: a simulated run ends in milliseconds, and the summary should not wait
        // for a coarse progress tick.
        while !worker.is_finished() {
            std::thread::sleep(Duration::from_millis(5));
            if interrupted.load(std::sync::atomic::Ordering::Relaxed) {
                control.request_stop();
            }
            bar.set_position(control.cycle());
            bar.set_message(format!(
                "jobs {} overruns {} mode {}",
                control.jobs_done(),
                control.overruns(),
                d.modes
                    .get(control.active_mode())
                    .map_or("?", |m| m.name.as_str())
            ));
        }
        bar.finish_and_clear();
        worker.join()
    })
    .map_err(|_| Failure::run_failed("the run thread panicked"))?
    .map_err(|e| Failure::run_failed(format!("takt run: {e}")))?;

    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(t) = &report.trace {
        eprintln!(
            "trace: {} records ({} lost in full rings) written to {}{}",
            t.records,
            t.dropped,
            t.path.display(),
            if t.rings_unfinished > 0 {
                format!(
                    "; {} ring(s) could not be drained completely",
                    t.rings_unfinished
                )
            } else {
                String::new()
            }
        );
    }
    print_summary(&d, &report);
    Ok(())
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
    let _ = writeln!(
        out,
        "{:<12} {:>4} {:>6} {:>5} {:>7} {:>5}  {:<34} {:<34}",
        "task",
        "core",
        "jobs",
        "skip",
        "overrun",
        "miss",
        "release lateness min/p50/p99/max",
        "execution min/p50/p99/max"
    );
    for t in &r.tasks {
        let _ = writeln!(
            out,
            "{:<12} {:>4} {:>6} {:>5} {:>7} {:>5}  {:<34} {:<34}",
            t.name,
            t.core,
            t.jobs,
            t.skipped,
            t.overruns,
            t.deadline_misses,
            q(&t.lateness),
            q(&t.execution)
        );
    }
    let overruns: u64 = r.tasks.iter().map(|t| t.overruns).sum();
    let misses: u64 = r.tasks.iter().map(|t| t.deadline_misses).sum();
    let _ = writeln!(out, "overruns: {overruns}, deadline misses: {misses}");
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

//! Shared helpers for takt's verification suites: loading the demo deployments (ACC, and the
//! two-supplier lane keeping), running them through the library, and detecting (loudly)
//! what this machine cannot do.
#![deny(unsafe_code)]

use std::path::PathBuf;
use std::sync::Mutex;

use takt::dispatch::{self, ClockKind, Jitter, RunControl, RunOptions, RunReport};
use takt::manifest::{self, Deployment};
use takt::plan::{self, Plan};
use takt::task::Registry;

/// Real-time runs share the machine's two cores; tests in one binary take this lock so two
/// SCHED_FIFO runs never compete with each other.
static REALTIME: Mutex<()> = Mutex::new(());

/// Serializes the runs of one test binary. Not only SCHED_FIFO runs: a simulated run in a
/// parallel test thread creates and faults in megabytes of shared memory, and with memory
/// locked (`mlockall`) that holds the process's address-space lock long enough to stall a
/// real-time dispatcher of the same process for tens of milliseconds. A deployment's own
/// process does no such thing while it runs; a test binary running several at once would.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    REALTIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Path of a file in the repository's `config/` directory.
pub fn config(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("config")
        .join(name)
}

/// The ACC demo deployment, validated and planned (and the plan verified).
pub fn acc() -> (Deployment, Plan, Registry) {
    load("acc.toml", takt_acc::registry())
}

/// Both suppliers' tasks of the lane-keeping deployment in one registry: what its two app
/// executables (`lane-perception`, `lane-control`) host between them. Only a program that
/// runs the whole deployment in one process links both suppliers.
pub fn lanekeep_registry() -> Registry {
    let mut r = Registry::new();
    supplier_a_perception::register(&mut r);
    supplier_b_control::register(&mut r);
    r
}

/// The lane-keeping deployment (`config/lanekeep.toml`), validated and planned (and the
/// plan verified).
pub fn lanekeep() -> (Deployment, Plan, Registry) {
    load("lanekeep.toml", lanekeep_registry())
}

/// `config/<name>` validated against `registry`, planned, and the plan verified.
fn load(name: &str, registry: Registry) -> (Deployment, Plan, Registry) {
    let d = manifest::load(
        &config(name),
        registry.catalog(),
        manifest::available_cores(),
    )
    .unwrap_or_else(|e| panic!("config/{name} must be valid: {e}"));
    let p =
        plan::synthesize(&d).unwrap_or_else(|e| panic!("config/{name} must be schedulable: {e}"));
    if let Err(v) = plan::verify(&d, &p) {
        panic!("synthesized plan of config/{name} failed verification: {v:?}");
    }
    (d, p, registry)
}

/// Whether SCHED_FIFO at the deployment's priority is permitted here. When it is not, the
/// caller must skip and say so by name.
pub fn realtime_available(priority: u8) -> bool {
    dispatch::probe_realtime(priority).is_ok()
}

/// Prints a loud skip line naming the test.
pub fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED {test}: {why}");
}

/// A namespace no other run (in this or another test process) uses.
pub fn unique_namespace(tag: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "t{}-{}-{}",
        std::process::id(),
        tag,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs the deployment for `duration_ns` with the given clock and optional jitter seed.
pub fn run(
    d: &Deployment,
    p: &Plan,
    registry: &Registry,
    clock: ClockKind,
    duration_ns: u64,
    jitter_seed: Option<u64>,
    tag: &str,
) -> RunReport {
    let control = RunControl::new(d.default_mode);
    run_with(
        d,
        p,
        registry,
        clock,
        duration_ns,
        jitter_seed,
        tag,
        &control,
    )
}

/// [`run`], steered through `control` (started in another mode, switched while it runs).
#[allow(clippy::too_many_arguments)]
pub fn run_with(
    d: &Deployment,
    p: &Plan,
    registry: &Registry,
    clock: ClockKind,
    duration_ns: u64,
    jitter_seed: Option<u64>,
    tag: &str,
    control: &RunControl,
) -> RunReport {
    let opts = RunOptions {
        clock,
        duration_ns,
        jitter: jitter_seed.map(|seed| Jitter {
            seed,
            max_fraction_of_budget: 0.5,
        }),
        namespace: Some(unique_namespace(tag)),
        ..RunOptions::default()
    };
    dispatch::run(d, p, registry, &opts, control)
        .unwrap_or_else(|e| panic!("run {tag} failed: {e}"))
}

/// Index of the mode called `name`.
pub fn mode_index(d: &Deployment, name: &str) -> usize {
    d.modes
        .iter()
        .position(|m| m.name == name)
        .unwrap_or_else(|| panic!("{} has no mode `{name}`", d.source))
}

/// The outcome line `key` of task `task` in a run's report.
pub fn outcome<'r>(r: &'r RunReport, task: &str, key: &str) -> &'r str {
    r.reports
        .iter()
        .find(|(name, _)| name == task)
        .and_then(|(_, report)| report.outcome.iter().find(|(k, _)| k == key))
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no outcome `{task}.{key}` in {:?}", r.reports))
}

/// The number an outcome value starts with (`"0.130 (after ...)"` -> 0.130).
pub fn leading_number(value: &str) -> f64 {
    let end = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(value.len());
    value[..end]
        .parse()
        .unwrap_or_else(|_| panic!("`{value}` does not start with a number"))
}

/// Jobs a task ran in a run (0 if it ran on no core).
pub fn jobs_of(r: &RunReport, task: &str) -> u64 {
    r.tasks
        .iter()
        .find(|t| t.name == task)
        .map_or(0, |t| t.jobs)
}

/// One line per task that overran, skipped or missed a deadline, for assertion messages.
pub fn problems(r: &RunReport) -> String {
    let lines: Vec<String> = r
        .tasks
        .iter()
        .filter(|t| t.overruns + t.skipped + t.deadline_misses > 0)
        .map(|t| {
            format!(
                "{} (core {}): {} overruns, {} skipped, {} deadline misses ({} of them the platform's, {} takt's), execution max {} ns, CPU time max {} ns, off-CPU max {} ns, lateness max {} ns",
                t.name, t.core, t.overruns, t.skipped, t.deadline_misses, t.platform_misses(), t.takt_misses(), t.execution.max_ns, t.cpu.max_ns, t.off_cpu_max_ns, t.lateness.max_ns
            )
        })
        .collect();
    if lines.is_empty() {
        "no overruns, skips or deadline misses".to_string()
    } else {
        lines.join("; ")
    }
}

/// Whether the run kept its schedule: no deadline misses and no skipped jobs. The
/// determinism contract is conditional on this (LET cannot deliver a sample its producer
/// had not finished by the deadline); the dispatcher measures and reports it.
pub fn kept_schedule(r: &RunReport) -> bool {
    r.tasks
        .iter()
        .all(|t| t.deadline_misses == 0 && t.skipped == 0)
}

/// What a real-time run's misses say about takt (see `takt::dispatch::attribution`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScheduleVerdict {
    /// No overrun, skip or deadline miss: the run's outputs can be compared.
    Kept,
    /// Every miss is the platform's (the host stalled the job or woke it late): the run
    /// says nothing about takt, so a comparison of its outputs is inconclusive.
    PlatformOnly(String),
    /// At least one miss is takt's or the task's (it used more CPU than its budget, or
    /// takt's own dispatching made it late): a failure.
    Takt(String),
}

/// Judges a real-time run by the attribution of its deadline misses and skips: what can
/// make its outputs differ (LET cannot deliver a sample its producer had not finished by
/// the deadline). An overrun that neither missed a deadline nor skipped a job leaves the
/// outputs alone, whoever caused it; it is in [`problems`] but not judged.
pub fn schedule_verdict(r: &RunReport) -> ScheduleVerdict {
    let takt: u64 = r
        .tasks
        .iter()
        .map(|t| {
            (t.deadline_misses - t.platform.deadline_misses) + (t.skipped - t.platform.skipped)
        })
        .sum();
    let platform: u64 = r
        .tasks
        .iter()
        .map(|t| t.platform.deadline_misses + t.platform.skipped)
        .sum();
    if takt > 0 {
        ScheduleVerdict::Takt(problems(r))
    } else if platform > 0 {
        ScheduleVerdict::PlatformOnly(problems(r))
    } else {
        ScheduleVerdict::Kept
    }
}

/// Reports a test whose run was spoilt by the platform: printed as `INCONCLUSIVE <test>:
/// ...` and, when `TAKT_INCONCLUSIVE_LOG` names a file (the test command sets it), appended
/// there, so the test command counts and names them at its end (cargo hides the output of a
/// test that returns). Such a test is never reported as passed by the test command.
pub fn inconclusive(test: &str, why: &str) {
    let line = format!("INCONCLUSIVE {test}: {why}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("TAKT_INCONCLUSIVE_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// How many real-time runs a digest test makes at most while each is spoilt by the
/// platform alone. A run with a takt miss is never repeated (it fails at once), so the
/// repeats cannot hide takt's misses; they only make a verdict likelier on a noisy host,
/// and each is printed with its figures.
pub const PLATFORM_ATTEMPTS: u32 = 3;

/// A real-time run judged by [`schedule_verdict`]: repeated (each attempt printed) only
/// while every miss is the platform's, at most [`PLATFORM_ATTEMPTS`] times. Returns the
/// last run and its verdict.
pub fn run_attributed(
    d: &Deployment,
    p: &Plan,
    registry: &Registry,
    duration_ns: u64,
    jitter_seed: Option<u64>,
    tag: &str,
) -> (RunReport, ScheduleVerdict) {
    let mut attempt = 1;
    loop {
        let r = run(
            d,
            p,
            registry,
            ClockKind::Real,
            duration_ns,
            jitter_seed,
            &format!("{tag}-{attempt}"),
        );
        let verdict = schedule_verdict(&r);
        match &verdict {
            ScheduleVerdict::PlatformOnly(why) if attempt < PLATFORM_ATTEMPTS => {
                eprintln!(
                    "RETRY {tag}: attempt {attempt} of {PLATFORM_ATTEMPTS}: every miss was the platform's: {why}"
                );
                attempt += 1;
            }
            _ => return (r, verdict),
        }
    }
}
pub mod harness;

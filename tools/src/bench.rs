//! `takt bench`: measures takt against its baselines in one run and reports figures, ratios
//! and targets as a table and a JSON file.
//!
//! Owns: the order of the parts, the facts about the machine (cores, kernel, whether
//! SCHED_FIFO and cyclictest are available), progress display, and turning a part that
//! cannot run into a `SKIPPED <part>: <reason>` line (or, when the code under test fails, a
//! `FAILED <part>: <reason>` line and exit code 1) while the other parts still run. It never
//! asserts a target and never waits without a timeout.
//!
//! Parts, one file each:
//! 1. `ports`: one-way latency of takt's `Writer`/`Reader` against raw iceoryx2.
//! 2. `jitter`: release lateness of the takt dispatcher against cyclictest.
//! 3. `overhead`: wake-up to `step()` entry, and heap allocations per job.
//! 4. `scale`: plan synthesis + verification time and per-job dispatch cost for 10, 100 and
//!    1,000 tasks.
//! 5. `sim`: how much faster than real time the ACC demo runs in simulated time.
//! 6. `tracing`: the cost of a traced event, and release lateness with tracing on vs off.
//! 7. `ota`: the planning v2 bundle's size, full and as a delta against v0.
//!
//! Scale runs last: a planner that does not finish within its limit is abandoned on its
//! thread, and nothing measured after it should share the CPU with it.
//!
//! Real-time discipline: SCHED_FIFO busy loops (the port ping-pong) run only in blocks of a
//! few milliseconds with pauses between them, so the machine's two cores are never both
//! monopolised for long; every other real-time part sleeps between releases.

pub mod alloc;
mod cyclictest;
mod jitter;
mod ota;
mod overhead;
mod ports;
mod report;
mod rig;
mod scale;
mod sim;
mod tracing;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};

use crate::common::Failure;
use report::Report;

/// What `takt bench` was asked to do.
pub struct BenchArgs {
    pub quick: bool,
    pub json: PathBuf,
    pub acc_manifest: Option<PathBuf>,
    pub cyclictest: Option<PathBuf>,
}

/// What every part needs to know about this run and this machine.
pub(crate) struct Env {
    pub quick: bool,
    pub cores: usize,
    /// Why SCHED_FIFO at [`rig::RT_PRIORITY`] is not permitted, or `None` when it is.
    pub not_realtime: Option<String>,
    /// The cyclictest executable, or why there is none.
    pub cyclictest: Result<PathBuf, String>,
    pub acc_manifest: PathBuf,
    /// Prefix of every shared-memory namespace of this run, unique per process.
    pub namespace: String,
    bar: ProgressBar,
}

impl Env {
    /// The core the single-core real-time parts run on: 1 when there are two or more (core
    /// 0 usually takes more interrupts and housekeeping), else 0.
    pub fn measure_core(&self) -> usize {
        if self.cores >= 2 {
            1
        } else {
            0
        }
    }

    /// Prints a line to stdout without tearing the progress bar.
    pub fn say(&self, line: &str) {
        self.bar.suspend(|| println!("{line}"));
    }

    /// Shows what is being measured right now.
    pub fn step(&self, msg: impl Into<Cow<'static, str>>) {
        self.bar.set_message(msg);
    }

    /// Records and prints `SKIPPED <part>: <reason>`.
    pub fn skip(&self, r: &mut Report, part: &str, reason: impl Into<String>) {
        let line = r.skip(part, reason);
        self.say(&line);
    }

    /// Records and prints `FAILED <part>: <reason>`.
    pub fn fail(&self, r: &mut Report, part: &str, reason: impl Into<String>) {
        let line = r.fail(part, reason);
        self.say(&line);
    }
}

/// One benchmark part: its name (the first word of its SKIPPED/FAILED lines), the JSON keys
/// it owns, and how to run it.
struct Part {
    name: &'static str,
    keys: &'static [&'static str],
    run: fn(&Env, &mut Report),
}

const PARTS: [Part; 7] = [
    Part {
        name: ports::PART,
        keys: ports::KEYS,
        run: ports::run,
    },
    Part {
        name: jitter::PART,
        keys: jitter::KEYS,
        run: jitter::run,
    },
    Part {
        name: overhead::PART,
        keys: overhead::KEYS,
        run: overhead::run,
    },
    Part {
        name: tracing::PART,
        keys: tracing::KEYS,
        run: tracing::run,
    },
    Part {
        name: sim::PART,
        keys: sim::KEYS,
        run: sim::run,
    },
    Part {
        name: ota::PART,
        keys: ota::KEYS,
        run: ota::run,
    },
    Part {
        name: scale::PART,
        keys: scale::KEYS,
        run: scale::run,
    },
];

pub fn bench(args: &BenchArgs) -> Result<(), Failure> {
    // Find out now, not after minutes of measuring, that the report cannot be written.
    std::fs::File::create(&args.json).map_err(|e| {
        Failure::bad_input(format!(
            "takt bench: --json {}: cannot create the report file: {e}",
            args.json.display()
        ))
    })?;
    let env = environment(args);
    let machine = machine(&env);
    println!(
        "takt bench ({}): {} cores, kernel {}, SCHED_FIFO {}, cyclictest {}",
        if env.quick { "quick" } else { "full" },
        env.cores,
        machine["kernel"].as_str().unwrap_or("?"),
        match &env.not_realtime {
            None => format!("{} permitted", rig::RT_PRIORITY),
            Some(_) => "NOT permitted".to_string(),
        },
        match &env.cyclictest {
            Ok(p) => p.display().to_string(),
            Err(_) => "not found".to_string(),
        }
    );
    let mut report = Report::new();
    for part in &PARTS {
        report.declare(part.name, part.keys);
    }
    env.bar.set_length(PARTS.len() as u64);
    for part in &PARTS {
        env.bar.set_prefix(part.name);
        env.step("starting");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (part.run)(&env, &mut report)
        }));
        if let Err(p) = outcome {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_string());
            env.fail(&mut report, part.name, format!("panicked: {what}"));
        }
        env.bar.inc(1);
    }
    env.bar.finish_and_clear();
    for line in report.explain_nulls() {
        println!("{line}");
    }
    println!();
    print!("{}", report.render_table());
    let json = report.to_json(machine, env.quick);
    let text = serde_json::to_string_pretty(&json).map_err(|e| {
        Failure::run_failed(format!("takt bench: cannot encode the JSON report: {e}"))
    })?;
    std::fs::write(&args.json, text + "\n").map_err(|e| {
        Failure::run_failed(format!(
            "takt bench: cannot write the JSON report to {}: {e}",
            args.json.display()
        ))
    })?;
    println!("JSON report: {}", args.json.display());
    match report.failed() {
        [] => Ok(()),
        failed => {
            let mut parts: Vec<&str> = failed.iter().map(|n| n.part.as_str()).collect();
            parts.dedup();
            Err(Failure::run_failed(format!(
                "takt bench: {} measurement(s) failed (parts: {}); see the FAILED lines above",
                failed.len(),
                parts.join(", ")
            )))
        }
    }
}

fn environment(args: &BenchArgs) -> Env {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let not_realtime = takt::dispatch::probe_realtime(rig::RT_PRIORITY)
        .err()
        .map(|e| e.to_string());
    let cyclictest = match &args.cyclictest {
        Some(p) if p.is_file() => Ok(p.clone()),
        Some(p) => Err(format!("{} does not exist", p.display())),
        None => find_on_path("cyclictest").ok_or_else(|| {
            "`cyclictest` is not on PATH (install rt-tests, e.g. `apt-get install rt-tests`)"
                .to_string()
        }),
    };
    let acc_manifest = args.acc_manifest.clone().unwrap_or_else(|| {
        let here = PathBuf::from("config/acc.toml");
        if here.is_file() {
            here
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/acc.toml")
        }
    });
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:20}] {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Env {
        quick: args.quick,
        cores,
        not_realtime,
        cyclictest,
        acc_manifest,
        namespace: format!("bench{}", std::process::id()),
        bar,
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// First line of a /proc or /sys file, trimmed; `None` if it cannot be read.
fn read_first_line(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().next().map(|l| l.trim().to_string())
}

/// The machine section of the JSON report.
fn machine(env: &Env) -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|t| {
        t.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    });
    let string = |s: Option<String>| s.map_or(Value::Null, Value::String);
    let mut m = Map::new();
    m.insert("cores".into(), Value::from(env.cores as u64));
    m.insert(
        "kernel".into(),
        string(read_first_line("/proc/sys/kernel/osrelease")),
    );
    m.insert(
        "kernel_version".into(),
        string(read_first_line("/proc/version")),
    );
    m.insert("cpu".into(), string(cpu));
    m.insert(
        "clocksource".into(),
        string(read_first_line(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        )),
    );
    m.insert("realtime".into(), Value::Bool(env.not_realtime.is_none()));
    m.insert("realtime_reason".into(), string(env.not_realtime.clone()));
    m.insert("rt_priority".into(), Value::from(rig::RT_PRIORITY));
    m.insert(
        "cyclictest".into(),
        string(
            env.cyclictest
                .as_ref()
                .ok()
                .map(|p| p.display().to_string()),
        ),
    );
    m.insert(
        "cyclictest_version".into(),
        string(
            env.cyclictest
                .as_ref()
                .ok()
                .and_then(|p| cyclictest::version(p)),
        ),
    );
    Value::Object(m)
}

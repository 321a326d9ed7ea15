//! Fault reports end to end (issue #11 item 5, last bullet): an app crate outside the
//! workspace (`tests/fault_app`, built with `cargo build --release` in a directory of its
//! own) whose `source` task reports faults on chosen jobs, run by the shipped `takt` binary.
//!
//! 1. simulated time, the deployment in one app process and in two: exact fault counts in the
//!    run summary (per task, with the first and last code), in the supervisor's health line
//!    per app, and in `takt trace report` (text and `--json`);
//! 2. simulated time, `on_fault = "escalate:safe"`: the mode switches at the boundary after
//!    the faulting job, as the mode history shows;
//! 3. real time (root): `takt status` (text and `--json`) shows the app's faults while it runs;
//! 4. real time (root): a candidate version whose jobs report a fault is rolled back by its
//!    probation and marked bad, the reason naming its faults.
//! 5. real time (root): a candidate whose lone job overruns its CPU budget is re-checked in
//!    a fresh window and committed; one that overruns again in the re-check is rolled back.
//! 6. real time (root): a candidate whose jobs are clean but whose process burns CPU in a
//!    thread of its own is rolled back on the kernel's CPU figure, which it cannot rewrite.
//!
//! Real-time runs need root and SCHED_FIFO; without them those tests say SKIPPED by name.
//! Every wait has a timeout; a guard kills a run a failing test leaves behind.
#![deny(unsafe_code)]

#[macro_use]
mod common;
use common::{ok, run, s, takt, Running, CLI_TIMEOUT, RT_PRIORITY};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Both output streams of a finished command, for failure messages.
fn both(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Builds the fault app once per test process: its sources are copied into
/// `target/takt-fault-app` (a crate of its own, outside the workspace, with this tree's
/// `Cargo.lock`) and built into the target directory the `takt new` test uses too, so the
/// dependencies are compiled once for both. Returns the directory of the executables.
fn app_bin_dir() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
            let root = root.canonicalize().expect("the workspace root");
            let src = root.join("tools/tests/fault_app");
            let dst = root.join("target/takt-fault-app");
            std::fs::create_dir_all(dst.join("src/bin")).expect("crate dir");
            // Writes only what changed, so an unchanged crate is not rebuilt.
            let put = |rel: &str, body: String| {
                let path = dst.join(rel);
                if std::fs::read_to_string(&path).ok().as_deref() != Some(body.as_str()) {
                    std::fs::write(&path, body).expect("write the crate");
                }
            };
            let cargo_toml = std::fs::read_to_string(src.join("Cargo.toml.tmpl"))
                .expect("Cargo.toml.tmpl")
                .replace("{{takt}}", s(&root.join("runtime")));
            put("Cargo.toml", cargo_toml);
            put(
                "Cargo.lock",
                std::fs::read_to_string(root.join("Cargo.lock")).expect("Cargo.lock"),
            );
            put(
                "src/lib.rs",
                std::fs::read_to_string(src.join("src/lib.rs")).expect("lib.rs"),
            );
            for bin in [
                "fault-both",
                "fault-source",
                "fault-sink",
                "fault-sink-v2",
                "fault-sink-spike-once",
                "fault-sink-spike-twice",
                "fault-sink-busy",
            ] {
                let rel = format!("src/bin/{bin}.rs");
                put(
                    &rel,
                    std::fs::read_to_string(src.join(&rel)).expect("a bin source"),
                );
            }
            let target = root.join("target/takt-new-app");
            let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            build
                .args(["build", "--release", "--quiet"])
                .current_dir(&dst)
                .env("CARGO_TARGET_DIR", &target);
            let out = run(&mut build, Duration::from_secs(1800));
            assert!(
                out.status.success(),
                "cargo build of the fault app:\n{}",
                both(&out)
            );
            target.join("release")
        })
        .clone()
}

/// How the deployment is split into processes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// One app (`both`) hosts `source` and `sink`.
    OneApp,
    /// `sense` hosts `source`, `act` hosts `sink`, each in its own process.
    TwoApps,
}

/// The deployment: `source` (10 ms, offset 0) writes `samples`, `sink` (10 ms, offset
/// 5 ms) reads them, both on core 0. Mode `run` releases both, `safe` only `sink`.
/// `source_extra` goes into `source`'s table (`on_fault`, `[task.params]`), `ota` is the
/// `[ota]` table's body (none when empty).
fn manifest(dir: &Path, layout: Layout, source_extra: &str, ota: &str) -> PathBuf {
    let bin = app_bin_dir();
    let exe = |name: &str| s(&bin.join(name)).to_string();
    let (apps, source_app, sink_app) = match layout {
        Layout::OneApp => (
            format!("[[app]]\nname = \"both\"\nexecutable = \"{}\"\n", exe("fault-both")),
            "both",
            "both",
        ),
        Layout::TwoApps => (
            format!(
                "[[app]]\nname = \"sense\"\nexecutable = \"{}\"\n\n[[app]]\nname = \"act\"\nexecutable = \"{}\"\n",
                exe("fault-source"),
                exe("fault-sink")
            ),
            "sense",
            "act",
        ),
    };
    let ota = if ota.is_empty() {
        String::new()
    } else {
        format!("[ota]\n{ota}\n")
    };
    let text = format!(
        r#"[deployment]
name = "faults{pid}x{n}"
cores = [0]
priority = {RT_PRIORITY}
update_safe_modes = ["safe"]

{ota}
{apps}
[[task]]
name = "sink"
app = "{sink_app}"
period = "10ms"
offset = "5ms"
budget = "1ms"
let = "5ms"
core = 0

[[task]]
name = "source"
app = "{source_app}"
period = "10ms"
budget = "1ms"
let = "5ms"
core = 0
{source_extra}

[[channel]]
topic = "samples"
type = "Sample"
writer = "source"
readers = ["sink"]

[[mode]]
name = "run"
default = true
tasks = ["source", "sink"]

[[mode]]
name = "safe"
tasks = ["sink"]
"#,
        pid = std::process::id(),
        n = {
            // A name per deployment: tests run in parallel, and topics are named after it.
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        },
    );
    let path = dir.join("faults.toml");
    std::fs::write(&path, text).expect("write the manifest");
    path
}

/// Faults in `source` jobs 3, 13, ..., 93 (jobs `k % 10 == 3`): in a 1 s run (100 jobs)
/// 10 faulted jobs, 20 reports, first code 103, last code 193.
const EVERY_TENTH: &str = "[task.params]\nfault_every = 10\nfault_at = 3\n";

/// The summary row of task `name`: `(jobs, fault)` (columns task, core, jobs, skip,
/// overrun, miss, fault).
fn summary_row(stdout: &str, name: &str) -> (u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("a row for {name} in {stdout}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    (
        f[2].parse().expect("jobs"),
        f[6].parse().unwrap_or_else(|_| panic!("fault in `{line}`")),
    )
}

/// Runs the deployment in simulated time for 1 s with a trace and checks every place the
/// faults show up. Returns the run's stdout.
fn simulated_faults_show_everywhere(layout: Layout, tag: &str) -> String {
    let dir = tempfile::Builder::new()
        .prefix(&format!("takt-faults-{tag}-"))
        .tempdir()
        .expect("temp dir");
    let m = manifest(dir.path(), layout, EVERY_TENTH, "");
    ok(&["check", s(&m)]);
    let trace = dir.path().join("run.trc");
    let out = run(
        takt().args([
            "run",
            s(&m),
            "--clock",
            "sim",
            "--duration",
            "1s",
            "--trace",
            s(&trace),
            "--control",
            s(&dir.path().join("ctl.sock")),
        ]),
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "sim run:\n{}", both(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(summary_row(&stdout, "source"), (100, 10), "{stdout}");
    assert_eq!(summary_row(&stdout, "sink"), (100, 0), "{stdout}");
    assert!(
        stdout.contains("faults: source 10 job(s) (20 report(s)), first code 103, last code 193"),
        "{stdout}"
    );
    assert!(!stdout.contains("faults: sink"), "{stdout}");
    // The health record per app, as the supervisor read it at the end.
    let (source_app, sink_app) = match layout {
        Layout::OneApp => ("both", None),
        Layout::TwoApps => ("sense", Some("act")),
    };
    let health = |app: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("app: {app} ")))
            .unwrap_or_else(|| panic!("a health line for {app} in {stdout}"))
            .to_string()
    };
    assert!(health(source_app).ends_with(" faults=10"), "{stdout}");
    if let Some(a) = sink_app {
        assert!(health(a).ends_with(" faults=0"), "{stdout}");
    }
    assert!(
        !stdout.contains("modes:"),
        "report only: no mode switch\n{stdout}"
    );

    // The trace files: one per app.
    let files: Vec<String> = match layout {
        Layout::OneApp => vec![format!("{}.both", s(&trace))],
        Layout::TwoApps => vec![format!("{}.sense", s(&trace)), format!("{}.act", s(&trace))],
    };
    let mut args = vec!["trace", "report"];
    args.extend(files.iter().map(String::as_str));
    let report = ok(&args);
    let row = report
        .lines()
        .find(|l| l.split_whitespace().next() == Some("source"))
        .unwrap_or_else(|| panic!("a source row in {report}"));
    let header = report
        .lines()
        .find(|l| l.split_whitespace().next() == Some("task"))
        .unwrap_or_else(|| panic!("a table header in {report}"));
    let col = header
        .split_whitespace()
        .position(|c| c == "fault")
        .unwrap_or_else(|| panic!("a fault column in {header}"));
    assert_eq!(row.split_whitespace().nth(col), Some("10"), "{report}");
    assert!(
        report.contains("faults: source 10 job(s) (20 report(s)), first code 103, last code 193"),
        "{report}"
    );
    args.push("--json");
    let json: Value = serde_json::from_str(&ok(&args)).expect("the report is JSON");
    let task = |name: &str| {
        json["tasks"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["name"] == name))
            .unwrap_or_else(|| panic!("task {name} in {json}"))
            .clone()
    };
    assert_eq!(
        task("source")["faults"],
        serde_json::json!({"jobs": 10, "reports": 20, "first_code": 103, "last_code": 193}),
        "{json}"
    );
    assert_eq!(task("sink")["faults"]["jobs"], 0, "{json}");
    stdout
}

#[test]
fn sim_one_app_process_counts_traces_and_reports_faults() {
    simulated_faults_show_everywhere(Layout::OneApp, "one");
}

#[test]
fn sim_two_app_processes_count_trace_and_report_faults_with_the_same_digest() {
    let two = simulated_faults_show_everywhere(Layout::TwoApps, "two");
    let one = simulated_faults_show_everywhere(Layout::OneApp, "one-again");
    let digest = |out: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix("digest: "))
            .unwrap_or_else(|| panic!("a digest in {out}"))
            .to_string()
    };
    assert_eq!(digest(&one), digest(&two), "faults change no output");
}

#[test]
fn sim_a_fault_escalates_to_the_named_mode_at_the_next_boundary() {
    for layout in [Layout::OneApp, Layout::TwoApps] {
        let dir = tempfile::tempdir().expect("temp dir");
        let m = manifest(
            dir.path(),
            layout,
            &format!("on_fault = \"escalate:safe\"\n{EVERY_TENTH}"),
            "",
        );
        let out = run(
            takt().args([
                "run",
                s(&m),
                "--clock",
                "sim",
                "--duration",
                "1s",
                "--control",
                s(&dir.path().join("ctl.sock")),
            ]),
            Duration::from_secs(120),
        );
        assert!(out.status.success(), "sim run:\n{}", both(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        // Job 3 of `source` faults in hyperperiod 3 (one job per 10 ms hyperperiod); the
        // request is decided at the next boundary, hyperperiod 4, where `safe` drops it.
        assert!(stdout.contains("modes: run@0 -> safe@4"), "{stdout}");
        assert_eq!(summary_row(&stdout, "source"), (4, 1), "{stdout}");
        assert_eq!(summary_row(&stdout, "sink").0, 100, "{stdout}");
    }
}

/// `takt status --json` of the run behind `ctl`, retried until it answers (at most 15 s).
fn status(ctl: &Path) -> Value {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let out = run(
            takt().args(["status", "--json", "--control", s(ctl)]),
            CLI_TIMEOUT,
        );
        if out.status.success() {
            return serde_json::from_slice(&out.stdout).expect("status is JSON");
        }
        assert!(Instant::now() < until, "no status: {}", both(&out));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn app<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["apps"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == name || x["app"] == name))
        .unwrap_or_else(|| panic!("app {name} in {v}"))
}

/// Polls `probe` every 100 ms until it returns `Some`, at most `limit`.
fn poll<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let until = Instant::now() + limit;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(last) => assert!(Instant::now() < until, "{what} within {limit:?}; {last}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn real_takt_status_shows_each_apps_faults() {
    needs_realtime!("real_takt_status_shows_each_apps_faults");
    let dir = tempfile::tempdir().expect("temp dir");
    // Faults in jobs 3, 13, 23, 33, 43 only: after hyperperiod 50 the count stands at 5.
    let m = manifest(
        dir.path(),
        Layout::TwoApps,
        &format!("{EVERY_TENTH}fault_before = 50\n"),
        "",
    );
    let ctl = dir.path().join("ctl.sock");
    let running = Running::spawn(takt().args([
        "run",
        s(&m),
        "--duration",
        "3s",
        "--quiet",
        "--control",
        s(&ctl),
    ]));
    let v = poll(Duration::from_secs(15), "hyperperiod 60", || {
        let v = status(&ctl);
        if v["cycle"].as_u64().unwrap_or(0) > 60 {
            Ok(v)
        } else {
            Err(format!("last status {v}"))
        }
    });
    assert_eq!(app(&v, "sense")["faults"], 5, "{v}");
    assert_eq!(app(&v, "act")["faults"], 0, "{v}");
    let table = ok(&["status", "--control", s(&ctl)]);
    let header = table
        .lines()
        .find(|l| l.starts_with("app "))
        .unwrap_or_else(|| panic!("a header in {table}"));
    let col = header
        .split_whitespace()
        .position(|c| c == "faults")
        .unwrap_or_else(|| panic!("a faults column in {header}"));
    // The header's `heartbeat age` is two words; a row's age is one.
    let row = table
        .lines()
        .find(|l| l.starts_with("sense "))
        .unwrap_or_else(|| panic!("a row for sense in {table}"));
    assert_eq!(row.split_whitespace().nth(col - 1), Some("5"), "{table}");
    let out = running.wait(Duration::from_secs(60), "the run");
    assert!(out.status.success(), "{}", both(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("faults: source 5 job(s) (10 report(s)), first code 103, last code 143"),
        "{stdout}"
    );
}

/// A real-time run of the two-app deployment with OTA on (probation 500 ms, 50 jobs of
/// `sink`); the candidate `act` version 2, built from executable `candidate`, is staged and
/// hot-swapped in. Returns the app's `ota status` once its update has ended (`committed` or
/// `rolled-back`), and the run's stderr.
fn hot_swap_candidate(candidate: &str) -> (Value, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("dev.key");
    ok(&["ota", "keygen", "--out", s(&key)]);
    let public = std::fs::read_to_string(dir.path().join("dev.key.pub")).expect("dev.key.pub");
    let m = manifest(
        dir.path(),
        Layout::TwoApps,
        "",
        &format!(
            "trusted_keys = [\"{}\"]\nprobation = \"500ms\"\n",
            public.trim()
        ),
    );
    let bundle = dir.path().join("act-2.takt");
    ok(&[
        "ota",
        "sign",
        "--key",
        s(&key),
        "--app",
        "act",
        "--version",
        "2",
        "--label",
        "2.0",
        "--executable",
        s(&app_bin_dir().join(candidate)),
        "--manifest",
        s(&m),
        "--out",
        s(&bundle),
    ]);
    let ctl = dir.path().join("ctl.sock");
    let state = dir.path().join("state");
    let running = Running::spawn(takt().args([
        "run",
        s(&m),
        "--duration",
        "8s",
        "--quiet",
        "--ota-dir",
        s(&state),
        "--control",
        s(&ctl),
    ]));
    poll(Duration::from_secs(15), "every app running", || {
        let v = status(&ctl);
        let up = v["phase"] == "running"
            && v["cycle"].as_u64().unwrap_or(0) > 5
            && v["apps"]
                .as_array()
                .is_some_and(|a| a.iter().all(|x| x["state"] == "running"));
        if up {
            Ok(())
        } else {
            Err(format!("last status {v}"))
        }
    });
    let out = ok(&["ota", "stage", s(&bundle), "--control", s(&ctl)]);
    assert!(out.contains("version 2 staged"), "{out}");
    let out = ok(&["ota", "activate", "act", "--hot-swap", "--control", s(&ctl)]);
    assert!(out.contains("switched to version 2"), "{out}");
    let v = poll(Duration::from_secs(15), "act's update ended", || {
        let v: Value =
            serde_json::from_str(&ok(&["ota", "status", "--json", "--control", s(&ctl)]))
                .expect("ota status is JSON");
        if ["rolled-back", "committed"].contains(&app(&v, "act")["state"].as_str().unwrap_or("")) {
            Ok(v)
        } else {
            Err(format!("last ota status {v}"))
        }
    });
    let a = app(&v, "act").clone();
    // The app's health: faults of the candidate only.
    let st = status(&ctl);
    assert_eq!(app(&st, "sense")["faults"], 0, "{st}");
    let a = serde_json::json!({ "ota": a, "status": app(&st, "act").clone() });
    let out = running.wait(Duration::from_secs(60), "the run");
    assert!(out.status.success(), "{}", both(&out));
    (a, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn real_a_candidate_that_reports_faults_is_rolled_back_and_marked_bad() {
    needs_realtime!("real_a_candidate_that_reports_faults_is_rolled_back_and_marked_bad");
    let (v, _) = hot_swap_candidate("fault-sink-v2");
    let a = &v["ota"];
    assert_eq!(a["state"], "rolled-back", "{v}");
    assert_eq!(
        a["running_version"], 0,
        "the manifest's version runs again: {v}"
    );
    assert!(
        a["bad_versions"]
            .as_array()
            .is_some_and(|b| b.contains(&Value::from(2))),
        "version 2 is marked bad: {v}"
    );
    let last = a["last_result"].as_str().unwrap_or_default();
    assert!(
        last.contains("reported a fault") && last.contains("probation_max_faults = 0"),
        "the reason names the candidate's faults: {last}"
    );
    // The app's health saw them.
    assert!(v["status"]["faults"].as_u64().unwrap_or(0) > 0, "{v}");
}

/// Probation rule 1's re-check, end to end: a candidate whose one job goes over its CPU
/// budget (as a host spike makes a lone job look) is judged again in a fresh window and
/// committed when that window is clean; one that does it again in the re-check window is
/// rolled back and marked bad, the reason naming both windows and the task.
#[test]
fn real_a_lone_overrun_is_rechecked_and_only_a_repeated_one_rolls_back() {
    needs_realtime!("real_a_lone_overrun_is_rechecked_and_only_a_repeated_one_rolls_back");
    let (v, err) = hot_swap_candidate("fault-sink-spike-once");
    let a = &v["ota"];
    let last = a["last_result"].as_str().unwrap_or_default();
    assert!(
        err.contains("so the window starts again"),
        "the lone overrun started a re-check window: {err}"
    );
    assert_eq!(a["state"], "committed", "{v}\n{err}");
    assert_eq!(a["running_version"], 2, "{v}");
    assert!(
        last.contains("a re-check window did not repeat the first window's excess")
            && last.contains("task `sink`"),
        "the commit says what was excused: {last}"
    );

    let (v, err) = hot_swap_candidate("fault-sink-spike-twice");
    let a = &v["ota"];
    let last = a["last_result"].as_str().unwrap_or_default();
    assert_eq!(a["state"], "rolled-back", "{v}\n{err}");
    assert_eq!(a["running_version"], 0, "{v}");
    assert!(
        a["bad_versions"]
            .as_array()
            .is_some_and(|b| b.contains(&Value::from(2))),
        "version 2 is marked bad: {v}"
    );
    assert!(
        last.contains("in the window that re-checked the first one")
            && last.contains("a job of task `sink` used"),
        "the reason names both windows and the task: {last}"
    );
}

/// Probation rule 5, end to end: the candidate's counters are clean (no overrun, no fault),
/// but its process uses far more CPU than its tasks' budgets, in a thread outside any job.
/// The kernel's accounting of the process rolls it back and marks it bad.
#[test]
fn real_a_candidate_burning_cpu_outside_its_jobs_is_rolled_back_on_the_kernels_figure() {
    needs_realtime!(
        "real_a_candidate_burning_cpu_outside_its_jobs_is_rolled_back_on_the_kernels_figure"
    );
    let (v, err) = hot_swap_candidate("fault-sink-busy");
    let a = &v["ota"];
    let last = a["last_result"].as_str().unwrap_or_default();
    assert_eq!(a["state"], "rolled-back", "{v}\n{err}");
    assert_eq!(a["running_version"], 0, "{v}");
    assert!(
        a["bad_versions"]
            .as_array()
            .is_some_and(|b| b.contains(&Value::from(2))),
        "version 2 is marked bad: {v}"
    );
    println!("rolled back: {last}");
    assert!(
        last.contains("the kernel accounts its process") && last.contains("per hyperperiod"),
        "the reason is the kernel's figure: {last}"
    );
    // Its own counters never saw a thing.
    assert_eq!(v["status"]["faults"], 0, "{v}");
}

//! Over-the-air updates end to end (issue #6): `takt run --ota-dir` supervising the ACC
//! deployment on real processes, real SCHED_FIFO and real files, driven only through the
//! `takt` command line as an integrator drives it.
//!
//! Owns: its temporary directories (keys, bundles, manifest copies, state directories,
//! control sockets, traces) and the runs it starts. It must never write `config/` or any
//! state directory but its own, and it must never end a process it did not start.
//!
//! The acceptance list, one test each:
//! 1. a hot swap commits after probation and the trace shows every release exactly once;
//! 2. an overrunning version is rolled back and marked bad, and cannot be staged again;
//! 3. every kind of bad bundle is refused with its reason and changes nothing;
//! 4. `kill -9` of the supervisor at every journal transition restarts into exactly one
//!    version (the old one, or the new one once committed).
//!
//! Real-time runs need root and SCHED_FIFO; without them every test says SKIPPED by name.
//! The tests take one lock, so two runs never compete for the same cores. Every wait has a
//! timeout; a guard kills the run a failing test leaves behind (its apps follow it through
//! their parent-death signal).
#![deny(unsafe_code)]

#[macro_use]
mod common;
use common::*;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use takt::ota::bundle::{self, Entry, Fragment};

/// The directory the takt binary was built into; the ACC app executables are built there.
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_takt"))
        .parent()
        .expect("the takt binary is in a directory")
        .to_path_buf()
}

/// An executable of the `takt-acc` package (`acc-planning-v2`, `-v3`). `cargo test
/// --workspace` builds them; a test of this package alone builds them once if missing.
fn app_exe(name: &str) -> PathBuf {
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let path = bin_dir().join(name);
    let _once = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    if !path.is_file() {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-p", "takt-acc", "--bins"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if bin_dir().file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("cargo runs");
        assert!(st.success(), "building the takt-acc executables failed");
        assert!(path.is_file(), "{} after the build", path.display());
    }
    path
}

/// One test's world: a temporary directory with a signing key, the demo manifest copy that
/// trusts it, a control socket path and a state directory.
struct Fixture {
    dir: tempfile::TempDir,
    manifest: PathBuf,
    key: PathBuf,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix(&format!("takt-ota-{tag}-"))
            .tempdir()
            .expect("temp dir");
        let key = dir.path().join("dev.key");
        ok(&["ota", "keygen", "--out", s(&key)]);
        let public = std::fs::read_to_string(dir.path().join("dev.key.pub")).expect("dev.key.pub");
        let public = public.trim();
        assert_eq!(public.len(), 64, "a hex public key: {public}");
        let source = absolute_executables(
            &std::fs::read_to_string(source_manifest()).expect("config/acc.toml"),
        );
        assert_eq!(source.matches("\n[ota]\n").count(), 1, "one [ota] table");
        let copy = source.replacen(
            "\n[ota]\n",
            &format!("\n[ota]\ntrusted_keys = [\"{public}\"]\n"),
            1,
        );
        let manifest = dir.path().join("acc.toml");
        std::fs::write(&manifest, copy).expect("write the manifest copy");
        Fixture { dir, manifest, key }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ctl(&self) -> PathBuf {
        self.path("ctl.sock")
    }

    fn state(&self) -> PathBuf {
        self.path("state")
    }

    /// `takt ota sign` of app `planning` at `version` with `exe`, by `key`.
    fn sign_with(&self, key: &Path, version: u64, exe: &Path, out: &str) -> PathBuf {
        let out = self.path(out);
        let v = version.to_string();
        let label = format!("{version}.0");
        ok(&[
            "ota",
            "sign",
            "--key",
            s(key),
            "--app",
            "planning",
            "--version",
            &v,
            "--label",
            &label,
            "--executable",
            s(exe),
            "--manifest",
            s(&self.manifest),
            "--out",
            s(&out),
        ]);
        out
    }

    /// The seed of the key `takt ota keygen` wrote, for bundles the test builds with the
    /// runtime API (`bundle::signing_key(&seed)`).
    fn seed(&self) -> [u8; 32] {
        let hex = std::fs::read_to_string(&self.key).expect("dev.key");
        takt::ota::from_hex::<32>(hex.trim()).expect("a key from takt ota keygen")
    }

    fn sign(&self, version: u64, exe: &Path, out: &str) -> PathBuf {
        self.sign_with(&self.key, version, exe, out)
    }

    /// `takt run` of the manifest copy with OTA on, in the background.
    fn start(&self, duration: &str, kill_at: Option<&str>, trace: Option<&Path>) -> Run {
        let mut cmd = takt();
        cmd.args([
            "run",
            s(&self.manifest),
            "--multi-process",
            "--duration",
            duration,
            "--quiet",
            "--ota-dir",
            s(&self.state()),
            "--control",
            s(&self.ctl()),
        ]);
        if let Some(t) = trace {
            cmd.args(["--trace", s(t)]);
        }
        match kill_at {
            Some(point) => cmd.env("TAKT_OTA_KILL_AT", point),
            None => cmd.env_remove("TAKT_OTA_KILL_AT"),
        };
        Run(Some(Running::spawn(&mut cmd)))
    }
}

/// Kills the supervisor (and with it, by the parent-death signal, its apps) if a test
/// fails before the run ends.
struct Run(Option<Running>);

impl Run {
    /// Waits at most `timeout` for the run to end and returns its output.
    fn finish(mut self, timeout: Duration) -> Output {
        self.0.take().expect("running").wait(timeout, "the run")
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(mut r) = self.0.take() {
            r.kill();
        }
    }
}

/// `takt status --json` (the apps' processes), retried until the supervisor answers.
fn status(ctl: &Path) -> Value {
    let until = Instant::now() + START_TIMEOUT;
    loop {
        let out = cli(&["status", "--json", "--control", s(ctl)], CLI_TIMEOUT);
        if out.status.success() {
            return serde_json::from_slice(&out.stdout).expect("status is JSON");
        }
        assert!(
            Instant::now() < until,
            "no status within {START_TIMEOUT:?}: {}",
            text(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Calls `probe` every 100 ms until it returns `Ok`, at most `timeout`; the last `Err`
/// (what was seen) goes into the failure message.
fn poll<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let until = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(last) => assert!(Instant::now() < until, "{what} within {timeout:?}; {last}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `takt status --json` until every app runs and a few hyperperiods have passed.
fn wait_running(ctl: &Path) -> Value {
    poll(START_TIMEOUT, "every app running", || {
        let v = status(ctl);
        let running = v["phase"] == "running"
            && v["cycle"].as_u64().unwrap_or(0) > 5
            && v["apps"]
                .as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(|x| x["state"] == "running"));
        if running {
            Ok(v)
        } else {
            Err(format!("last status {v}"))
        }
    })
}

/// App `name` in a `takt status` report (keyed `name`) or a `takt ota status` one (`app`).
fn app<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["apps"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == name || x["app"] == name))
        .unwrap_or_else(|| panic!("app {name} in {v}"))
}

/// `takt ota status --json` from the running supervisor: its exact stdout.
fn ota_status_text(ctl: &Path) -> String {
    ok(&["ota", "status", "--json", "--control", s(ctl)])
}

fn ota_status(ctl: &Path) -> Value {
    serde_json::from_str(&ota_status_text(ctl)).expect("ota status is JSON")
}

/// `takt ota status --json` read from the state directory, no supervisor involved.
fn ota_status_offline(fx: &Fixture) -> String {
    ok(&[
        "ota",
        "status",
        "--json",
        "--manifest",
        s(&fx.manifest),
        "--ota-dir",
        s(&fx.state()),
    ])
}

/// Polls the OTA status until `pred` holds for app `planning` (at most `timeout`).
fn planning_until(
    ctl: &Path,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    poll(timeout, what, || {
        let v = ota_status(ctl);
        if pred(app(&v, "planning")) {
            Ok(v)
        } else {
            Err(format!("last OTA status {v}"))
        }
    })
}

/// Slot `name` of an app's OTA report.
fn slot<'a>(a: &'a Value, name: &str) -> &'a Value {
    a["slots"]
        .as_array()
        .and_then(|x| x.iter().find(|x| x["slot"] == name))
        .unwrap_or_else(|| panic!("slot {name} in {a}"))
}

/// Every file and directory under `dir` with its size, inode, mode and modification time:
/// an atomic replace (new inode) or any write (size, mtime) shows as a difference.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read the state directory")
            .map(|e| e.expect("a directory entry").path())
            .collect();
        entries.sort();
        for p in entries {
            let m = std::fs::symlink_metadata(&p).expect("metadata");
            let rel = p
                .strip_prefix(root)
                .expect("under the root")
                .display()
                .to_string();
            out.push(format!(
                "{rel} ino={} mode={:o} size={} mtime={}.{:09}",
                m.ino(),
                m.mode(),
                m.size(),
                m.mtime(),
                m.mtime_nsec()
            ));
            if m.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

/// Pids of the live (not zombie) processes whose command line names `arg`: every process
/// of one run carries its control socket path.
fn processes_with(arg: &Path) -> Vec<u32> {
    let needle = arg.as_os_str().as_encoded_bytes();
    let mut pids = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if !cmdline.split(|&b| b == 0).any(|a| a == needle) {
            continue;
        }
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|st| {
                st.rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('Z'))
            })
            .unwrap_or(true);
        if !zombie {
            pids.push(pid);
        }
    }
    pids
}

/// Waits until no process of the run on control socket `ctl` remains, neither one whose
/// command line names it nor one of `pids` (at most `timeout`). Both are needed: an exiting
/// process loses its command line before it becomes a zombie.
fn wait_no_process(ctl: &Path, pids: &[u64], timeout: Duration) {
    let until = Instant::now() + timeout;
    loop {
        let mut left: Vec<u64> = processes_with(ctl).into_iter().map(u64::from).collect();
        left.extend(pids.iter().copied().filter(|&p| alive(p)));
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < until,
            "processes of the killed run still alive after {timeout:?}: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until none of `pids` is alive (at most `timeout`).
fn wait_dead(pids: &[u64], timeout: Duration) {
    let until = Instant::now() + timeout;
    loop {
        let left: Vec<u64> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < until,
            "processes {left:?} still alive after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|st| {
            st.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Release records of task `task` per trace file: `(file name, first job, last job, count)`.
fn releases_per_file(files: &[PathBuf], task: u32) -> Vec<(String, u64, u64, u64)> {
    let merged = takt::trace::read_many(files).expect("the run's traces read together");
    let mut out: Vec<(String, u64, u64, u64)> = files
        .iter()
        .map(|f| {
            let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
            (name.unwrap_or_default(), u64::MAX, 0, 0)
        })
        .collect();
    for r in &merged.records {
        if r.record.kind == takt::trace::EventKind::Release as u8 && r.record.task == task {
            let e = &mut out[r.file];
            e.1 = e.1.min(r.record.job);
            e.2 = e.2.max(r.record.job);
            e.3 += 1;
        }
    }
    out
}

#[test]
fn hot_swap_commits_and_the_trace_has_no_missed_release() {
    needs_realtime!("hot_swap_commits_and_the_trace_has_no_missed_release");
    let fx = Fixture::new("hot-swap");
    let v2 = fx.sign(2, &app_exe("acc-planning-v2"), "planning-2.takt");
    let trace = fx.path("t.takt");
    let run = fx.start("12s", None, Some(&trace));
    let ctl = fx.ctl();
    let before = wait_running(&ctl);
    let old_pid = app(&before, "planning")["pid"].as_u64().expect("pid");

    let out = ok(&["ota", "stage", s(&v2), "--control", s(&ctl)]);
    assert!(out.contains("staged into slot b"), "{out}");
    let out = ok(&[
        "ota",
        "activate",
        "planning",
        "--hot-swap",
        "--control",
        s(&ctl),
    ]);
    let switch_cycle: u64 = out
        .split("switched to version 2 at hyperperiod ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("`switched to version 2 at hyperperiod N` in {out}"));
    println!("switched to version 2 at hyperperiod {switch_cycle}");

    // Probation is 1 s = 25 hyperperiods of 40 ms; 10 s is ample on a loaded machine.
    let live = planning_until(&ctl, Duration::from_secs(10), "planning committed", |a| {
        a["state"] == "committed"
    });
    let check_committed = |v: &Value, how: &str| {
        let a = app(v, "planning");
        assert_eq!(a["running_version"], 2, "{how}: {v}");
        assert_eq!(a["installed_version"], 2, "{how}: {v}");
        assert_eq!(a["installed_slot"], "b", "{how}: {v}");
        assert_eq!(a["running_slot"], "b", "{how}: {v}");
        assert_eq!(slot(a, "b")["version"], 2, "{how}: slot b complete: {v}");
        assert_eq!(a["bad_versions"], serde_json::json!([]), "{how}: {v}");
        for other in ["sensing", "vehicle"] {
            assert_eq!(app(v, other)["state"], "idle", "{how}: {v}");
        }
    };
    check_committed(&live, "live");
    let last = app(&live, "planning")["last_result"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(last.contains("committed after a clean probation"), "{last}");
    println!("live: {last}");

    // The app's row in `takt status` describes the process that now runs it.
    let after = status(&ctl);
    let p = app(&after, "planning");
    let new_pid = p["pid"].as_u64().expect("pid");
    assert_ne!(new_pid, old_pid, "a new process runs planning: {after}");
    // Dismissed at the commit, version 0's process ends at a boundary soon after.
    wait_dead(&[old_pid], Duration::from_secs(10));
    // Checked last, so a failure here does not hide the figures below.
    let reported = p["version"].as_str().unwrap_or_default().to_string();
    println!("`takt status` after the switch: planning pid {new_pid} reports version `{reported}`");

    let out = run.finish(Duration::from_secs(40));
    assert!(
        out.status.success(),
        "{}\n{}",
        out.status,
        text(&out.stderr)
    );

    let offline: Value = serde_json::from_str(&ota_status_offline(&fx)).expect("JSON");
    check_committed(&offline, "offline");
    assert_eq!(app(&offline, "planning")["state"], "committed", "{offline}");

    // Every trace file of the run: one per app, and the planning app's second process.
    let mut files: Vec<PathBuf> = std::fs::read_dir(fx.dir.path())
        .expect("the test directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("t.takt."))
        })
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    assert_eq!(
        names,
        [
            "t.takt.planning",
            "t.takt.planning.1",
            "t.takt.sensing",
            "t.takt.vehicle"
        ],
        "one trace per process"
    );
    let mut args = vec!["trace", "report", "--json"];
    args.extend(files.iter().map(|f| s(f)));
    let report: Value = serde_json::from_str(&ok(&args)).expect("the report is JSON");
    let totals = &report["releases"];
    println!(
        "releases: planned {}, seen {}, missed {}, duplicate {}",
        totals["planned"], totals["seen"], totals["missed"], totals["duplicate"]
    );
    assert_eq!(totals["missed"], 0, "no release missed: {totals}");
    assert_eq!(totals["duplicate"], 0, "no release twice: {totals}");
    assert_eq!(totals["planned"], totals["seen"], "{totals}");
    assert!(totals["planned"].as_u64().unwrap_or(0) > 0, "{totals}");
    let mut args = vec!["trace", "report"];
    args.extend(files.iter().map(|f| s(f)));
    let text_report = ok(&args);
    assert!(
        text_report.contains("missed releases: 0, duplicate releases: 0"),
        "{text_report}"
    );

    // Each task of the planning app: the old process released its jobs up to the switch
    // boundary, the new one every job from there on.
    let tasks = report["tasks"].as_array().expect("tasks");
    for (name, jobs_per_cycle) in [("planner", 2u64), ("controller", 4)] {
        let t = tasks
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{name} in the report"));
        let index = u32::try_from(t["index"].as_u64().expect("index")).expect("a task index");
        let per_file = releases_per_file(&files, index);
        println!(
            "{name}: planned {}, seen {}; per file {per_file:?}",
            t["releases"]["planned"], t["releases"]["seen"]
        );
        assert_eq!(t["releases"]["missed"], 0, "{name}: {t}");
        assert_eq!(t["releases"]["duplicate"], 0, "{name}: {t}");
        let boundary = switch_cycle * jobs_per_cycle;
        let old = &per_file[0];
        let new = &per_file[1];
        assert_eq!(
            (old.1, old.2, old.3),
            (0, boundary - 1, boundary),
            "{name}: version 0 released jobs 0..{boundary} ({per_file:?})"
        );
        assert_eq!(
            new.1, boundary,
            "{name}: version 2 from job {boundary} ({per_file:?})"
        );
        assert_eq!(
            new.3,
            new.2 - new.1 + 1,
            "{name}: no gap in version 2 ({per_file:?})"
        );
        assert_eq!(
            Some(old.3 + new.3),
            t["releases"]["seen"].as_u64(),
            "{name}: both files together hold every release"
        );
        assert!(
            per_file[2].3 == 0 && per_file[3].3 == 0,
            "{name}: only planning releases it"
        );
    }
    assert!(
        reported.starts_with("2 ("),
        "`takt status` reports the version the planning process runs (2), got `{reported}`: {after}"
    );
}

#[test]
fn an_overrunning_version_is_rolled_back_and_marked_bad() {
    needs_realtime!("an_overrunning_version_is_rolled_back_and_marked_bad");
    let fx = Fixture::new("overrun");
    let v3 = fx.sign(3, &app_exe("acc-planning-v3"), "planning-3.takt");
    let run = fx.start("10s", None, None);
    let ctl = fx.ctl();
    let before = wait_running(&ctl);
    let old_pid = app(&before, "planning")["pid"].as_u64().expect("pid");
    let out = ok(&["ota", "stage", s(&v3), "--control", s(&ctl)]);
    assert!(out.contains("version 3 staged into slot b"), "{out}");
    let out = ok(&[
        "ota",
        "activate",
        "planning",
        "--hot-swap",
        "--control",
        s(&ctl),
    ]);
    assert!(out.contains("switched to version 3"), "{out}");
    println!("{}", out.trim());
    let v = planning_until(&ctl, Duration::from_secs(15), "planning rolled back", |a| {
        a["state"] == "rolled-back"
    });
    let a = app(&v, "planning");
    assert_eq!(
        a["running_version"], 0,
        "the manifest's own version runs again: {v}"
    );
    assert_eq!(a["installed_version"], 0, "{v}");
    assert_eq!(a["running_slot"], "a", "{v}");
    assert!(
        a["bad_versions"]
            .as_array()
            .is_some_and(|b| b.contains(&Value::from(3))),
        "version 3 is marked bad: {v}"
    );
    let last = a["last_result"].as_str().unwrap_or_default();
    assert!(
        last.contains("overrun"),
        "the reason names the overruns: {last}"
    );
    println!("{last}");

    let again = cli(&["ota", "stage", s(&v3), "--control", s(&ctl)], CLI_TIMEOUT);
    let err = text(&again.stderr);
    assert_eq!(
        again.status.code(),
        Some(2),
        "a bad version is refused: {err}"
    );
    assert!(err.contains("marked bad"), "{err}");
    println!("restage: {}", err.trim());

    // The run goes on under version 0.
    let s2 = status(&ctl);
    assert_eq!(s2["phase"], "running", "{s2}");
    assert_eq!(app(&s2, "planning")["state"], "running", "{s2}");
    assert_eq!(
        app(&s2, "planning")["pid"].as_u64(),
        Some(old_pid),
        "the replaced process, standing by during probation, runs planning again: {s2}"
    );
    let v = ota_status(&ctl);
    assert_eq!(app(&v, "planning")["state"], "rolled-back", "{v}");
    let out = run.finish(Duration::from_secs(40));
    let err = text(&out.stderr);
    assert!(
        err.contains("version 3 rolled back at hyperperiod"),
        "the supervisor logged the rollback: {err}"
    );
    assert!(
        out.status.success(),
        "the run ended well: {}\n{err}",
        out.status
    );
}

/// Signs `fragment` with `entries` by the fixture's key, as `takt ota sign` would, but from
/// a fragment the test has changed.
fn sign_fragment(fx: &Fixture, fragment: &Fragment, entries: &[Entry], out: &str) -> PathBuf {
    let key = bundle::signing_key(&fx.seed());
    let bytes = bundle::sign(fragment, entries, &key).expect("a bundle");
    let path = fx.path(out);
    std::fs::write(&path, bytes).expect("write the bundle");
    path
}

#[test]
fn refused_bundles_change_nothing() {
    needs_realtime!("refused_bundles_change_nothing");
    let fx = Fixture::new("refused");
    let exe = app_exe("acc-planning-v2");
    let good = fx.sign(2, &exe, "planning-2.takt");

    // Every bad bundle is made before the run starts, so the run sees only the stages.
    let other_key = fx.path("other.key");
    ok(&["ota", "keygen", "--out", s(&other_key)]);
    let untrusted = fx.sign_with(&other_key, 2, &exe, "untrusted.takt");
    let mut bytes = std::fs::read(&good).expect("the good bundle");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let flipped = fx.path("flipped.takt");
    std::fs::write(&flipped, &bytes).expect("write");
    drop(bytes);
    let equal = fx.sign(0, &exe, "planning-0.takt");

    let registry = takt_acc::registry();
    let d = takt::manifest::load(
        &fx.manifest,
        registry.catalog(),
        takt::manifest::available_cores(),
    )
    .unwrap_or_else(|e| panic!("the manifest copy loads: {e}"));
    let layouts = takt::catalog::AppCatalog::of(&registry).layouts();
    let fragment =
        Fragment::from_deployment(&d, registry.catalog(), &layouts, "planning", 2, "2.0")
            .unwrap_or_else(|e| panic!("the planning fragment: {e}"));
    let entries = vec![Entry {
        name: "acc-planning-v2".to_string(),
        mode: 0o755,
        bytes: std::fs::read(&exe).expect("the v2 executable"),
    }];
    let mut fr = fragment.clone();
    let port = fr
        .ports
        .iter_mut()
        .find(|p| p.topic == "accel_request")
        .expect("planning writes accel_request");
    // A version built with two f64 fields of AccelRequest swapped: the same name, size and
    // alignment, another structure (and so another structural fingerprint).
    let structure = port
        .layout
        .structure
        .as_mut()
        .expect("the bundle carries the structure");
    let takt::port::layout::Shape::Struct { fields } = &mut structure.shape else {
        panic!("AccelRequest is a struct");
    };
    let (a, b) = (fields[1].name.clone(), fields[2].name.clone());
    fields[1].name = b;
    fields[2].name = a;
    port.layout.hash = structure.hash();
    let fingerprint = sign_fragment(&fx, &fr, &entries, "fingerprint.takt");
    // The controller shares the 0-5 ms slot of core 0 with the world's 0.5 ms: 4.8 ms more
    // (within its 5 ms LET, so the timing itself is valid) cannot fit.
    let mut fr = fragment.clone();
    let controller = fr
        .tasks
        .iter_mut()
        .find(|t| t.name == "controller")
        .expect("planning runs the controller");
    controller.budget_ns = 4_800_000;
    let unschedulable = sign_fragment(&fx, &fr, &entries, "unschedulable.takt");
    let raw = [
        (
            "acc-planning-v2".to_string(),
            0u8,
            0o755u32,
            b"\x7fELF".to_vec(),
        ),
        (
            "../escape".to_string(),
            0u8,
            0o644u32,
            b"outside the slot\n".to_vec(),
        ),
    ];
    let traversal = fx.path("traversal.takt");
    std::fs::write(
        &traversal,
        bundle::sign_raw_for_tests(&fragment, &raw, &bundle::signing_key(&fx.seed())),
    )
    .expect("write");

    let run = fx.start("12s", None, None);
    let ctl = fx.ctl();
    wait_running(&ctl);
    let without_cycle = |text: &str| {
        let mut v: Value = serde_json::from_str(text).expect("JSON");
        // The run's current hyperperiod moves on by itself; everything else must not.
        v.as_object_mut().map(|o| o.remove("cycle"));
        v
    };
    let live_before = ota_status_text(&ctl);
    let offline_before = ota_status_offline(&fx);
    let files_before = listing(&fx.state());
    assert!(!files_before.is_empty(), "the run created its journals");

    let cases: [(&str, &Path, &[&str]); 6] = [
        ("untrusted key", &untrusted, &["not among the trusted keys"]),
        ("flipped byte", &flipped, &["bad signature"]),
        (
            "equal version",
            &equal,
            &[
                "anti-rollback",
                "version 0 is not newer than the installed version 0",
            ],
        ),
        (
            "port fingerprint",
            &fingerprint,
            &[
                "port `accel_request`",
                "fingerprint",
                "differs",
                "field desired_gap_m: f64 at offset 8 vs f64 at offset 16",
            ],
        ),
        (
            "unschedulable budgets",
            &unschedulable,
            &["not schedulable"],
        ),
        (
            "`../` entry",
            &traversal,
            &["entry `../escape`", "path traversal"],
        ),
    ];
    for (what, path, reasons) in cases {
        let out = cli(
            &["ota", "stage", s(path), "--control", s(&ctl)],
            CLI_TIMEOUT,
        );
        let err = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{what}: refused as bad input: {err}"
        );
        assert!(err.contains("refused"), "{what}: {err}");
        assert!(err.contains("nothing was changed"), "{what}: {err}");
        for r in reasons {
            assert!(err.contains(r), "{what}: the reason names `{r}`: {err}");
        }
        let lines: Vec<&str> = err.lines().take(2).collect();
        println!("{what}: {}", lines.join(" / "));
        assert_eq!(
            without_cycle(&ota_status_text(&ctl)),
            without_cycle(&live_before),
            "{what}: the live OTA status is unchanged"
        );
        assert_eq!(
            ota_status_offline(&fx),
            offline_before,
            "{what}: the journals are unchanged"
        );
        assert_eq!(
            listing(&fx.state()),
            files_before,
            "{what}: the state files are unchanged"
        );
    }
    let after = wait_running(&ctl);
    assert_eq!(app(&after, "planning")["restarts"], 0, "{after}");
    // The control: the bundle the bad ones were made from stages into the same run, so
    // each refusal above was for its own reason, not for something every stage meets.
    let out = ok(&["ota", "stage", s(&good), "--control", s(&ctl)]);
    assert!(out.contains("version 2 staged into slot b"), "{out}");
    println!("control: {}", out.trim());
    let v = ota_status(&ctl);
    assert_eq!(app(&v, "planning")["state"], "staged", "{v}");
    let out = run.finish(Duration::from_secs(40));
    assert!(
        out.status.success(),
        "{}\n{}",
        out.status,
        text(&out.stderr)
    );
}

/// What a kill at `point` must leave in the journal of app `planning`, and what the
/// restart must find: `(journal state left, state after recovery, running version,
/// installed version, recovery line in the restart's stderr)`. The switch is decided in
/// shared memory before the journal records it, so a kill at "switch-decided" leaves
/// `activating`.
fn expected_after(point: &str) -> (&'static str, &'static str, u64, u64, Option<&'static str>) {
    let reverted = Some("reverted an activation that never switched");
    match point {
        "staged" => ("staged", "staged", 0, 0, None),
        "activating" => ("activating", "staged", 0, 0, reverted),
        "switch-decided" => ("activating", "staged", 0, 0, reverted),
        "probation" => (
            "probation",
            "rolled-back",
            0,
            0,
            Some("rolled back a version that was on probation"),
        ),
        "committed" => ("committed", "committed", 2, 2, None),
        "rolled-back" => ("rolled-back", "rolled-back", 0, 0, None),
        other => panic!("no expectation for kill point {other}"),
    }
}

/// Starts a run that kills itself at `point`, drives an update there, waits until no
/// process of it remains, restarts it and checks that exactly one version runs.
fn kill_and_recover(point: &str, version: u64, exe: &Path) {
    let fx = Fixture::new(&format!("kill-{point}"));
    let bundle = fx.sign(version, exe, &format!("planning-{version}.takt"));
    let ctl = fx.ctl();
    let run = fx.start("15s", Some(point), None);
    let before = wait_running(&ctl);
    let pids: Vec<u64> = before["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .map(|a| a["pid"].as_u64().expect("pid"))
        .collect();

    let stage = cli(
        &["ota", "stage", s(&bundle), "--control", s(&ctl)],
        CLI_TIMEOUT,
    );
    if point == "staged" {
        assert!(
            !stage.status.success(),
            "{point}: the supervisor died before answering"
        );
    } else {
        assert!(stage.status.success(), "{point}: {}", text(&stage.stderr));
        let activate = cli(
            &[
                "ota",
                "activate",
                "planning",
                "--hot-swap",
                "--control",
                s(&ctl),
            ],
            CLI_TIMEOUT,
        );
        // Only a kill after the switch was answered lets the activation report success.
        let answered = matches!(point, "committed" | "rolled-back");
        assert_eq!(
            activate.status.success(),
            answered,
            "{point}: activate: {}",
            text(&activate.stderr)
        );
    }
    let out = run.finish(Duration::from_secs(30));
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGKILL),
        "{point}: the supervisor killed itself: {}\n{}",
        out.status,
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains(&format!("TAKT_OTA_KILL_AT={point}")),
        "{point}: {}",
        text(&out.stderr)
    );
    wait_no_process(&ctl, &pids, Duration::from_secs(10));

    // The restart recovers from the journal as it was left.
    let (left, state, running, installed, recovery) = expected_after(point);
    let offline: Value = serde_json::from_str(&ota_status_offline(&fx)).expect("JSON");
    assert_eq!(
        app(&offline, "planning")["state"],
        left,
        "{point}: the journal as the kill left it: {offline}"
    );
    println!("{point}: journal left as `{left}`");
    let again = fx.start("3s", None, None);
    let st = wait_running(&ctl);
    let v = ota_status(&ctl);
    let a = app(&v, "planning");
    assert_eq!(a["state"], state, "{point}: {v}");
    assert_eq!(a["running_version"], running, "{point}: {v}");
    assert_eq!(a["installed_version"], installed, "{point}: {v}");
    let bad_expected: Vec<u64> = if point == "rolled-back" {
        vec![version]
    } else {
        vec![]
    };
    assert_eq!(
        a["bad_versions"],
        serde_json::json!(bad_expected),
        "{point}: {v}"
    );
    if state == "staged" {
        assert_eq!(
            slot(a, "b")["version"],
            version,
            "{point}: staged slot intact: {v}"
        );
    }
    let p = app(&st, "planning");
    let reported = p["version"].as_str().unwrap_or_default().to_string();
    assert!(
        reported.starts_with(&format!("{running} (")),
        "{point}: the planning process runs version {running}, reports `{reported}`"
    );
    // Never a mix: the process runs the executable of the version the journal names (the
    // manifest's own code is the `executable` it names, a later version its slot's).
    let pid = p["pid"].as_u64().expect("pid");
    // The kernel names the file the process was started from, marked " (deleted)" when it
    // has been replaced since (a rebuild of takt while the test runs).
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("the planning executable");
    let exe = exe.to_string_lossy();
    let exe = exe.trim_end_matches(" (deleted)");
    let want = if running == 0 {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/acc-planning")
    } else {
        fx.state().join("planning/slot-b/acc-planning-v2")
    };
    let want = std::fs::canonicalize(&want).expect("the expected executable exists");
    assert_eq!(
        exe,
        want.to_string_lossy(),
        "{point}: planning (pid {pid}) runs the executable of version {running}"
    );
    let out = again.finish(Duration::from_secs(30));
    let err = text(&out.stderr);
    assert!(
        out.status.success(),
        "{point}: the restart ran: {}\n{err}",
        out.status
    );
    if let Some(line) = recovery {
        assert!(err.contains(line), "{point}: recovery said `{line}`: {err}");
    }
    println!(
        "{point}: restarted as `{state}`, running version {running}, installed {installed}, process reports `{reported}`"
    );
}

#[test]
fn kill_9_at_every_journal_transition_recovers_old_or_new() {
    needs_realtime!("kill_9_at_every_journal_transition_recovers_old_or_new");
    let v2 = app_exe("acc-planning-v2");
    let v3 = app_exe("acc-planning-v3");
    let cycle = [
        "staged",
        "activating",
        "switch-decided",
        "probation",
        "committed",
    ];
    let mut covered = Vec::new();
    for point in cycle {
        // v2 is a correct version. A host stall that makes one of its jobs overrun is the
        // platform's (its CPU time fit its budget), which probation reports but does not
        // hold against it, so every attempt must reach "committed": no retry.
        kill_and_recover(point, 2, &v2);
        covered.push(point);
    }
    println!("kill points covered: {}", covered.len());
    assert_eq!(covered.len(), 5);
    kill_and_recover("rolled-back", 3, &v3);
    covered.push("rolled-back");
    let mut all = takt::lifecycle::KILL_POINTS.to_vec();
    all.sort_unstable();
    covered.sort_unstable();
    assert_eq!(
        covered, all,
        "every kill point of the supervisor is covered"
    );
    println!("kill points covered with the rollback: {}", covered.len());
}

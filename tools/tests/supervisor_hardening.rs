//! The supervisor under hostile or broken peers (issue #12): hostile staged files (#12.3),
//! a rollback whose standby died (#12.4), idle clients (#12.5), peers that speak for
//! others (#12.6), standby and dismissed processes that hang (#12.8). Each drives the real
//! `takt` binary and real processes, as an integrator (or an attacker on the host) would.
//!
//! Owns: its temporary directories and the runs it starts. It must never end a process it
//! did not start. Real-time runs need root and SCHED_FIFO; without them every test says
//! SKIPPED by name. Every wait has a timeout; a guard kills the run a failing test leaves
//! behind (its apps follow it through their parent-death signal).
#![deny(unsafe_code)]

#[macro_use]
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Runs `takt args...`, which must be refused; returns its stderr.
fn refused(args: &[&str]) -> String {
    let out = cli(args, CLI_TIMEOUT);
    assert!(
        !out.status.success(),
        "takt {args:?} should be refused: {}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

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

    fn sign(&self, version: u64, exe: &Path, out: &str) -> PathBuf {
        self.sign_with(&self.key, version, exe, out)
    }

    /// `takt run` of the manifest copy with OTA on, in the background.
    fn start(&self, duration: &str, kill_at: Option<&str>, trace: Option<&Path>) -> Run {
        self.start_limited(duration, kill_at, trace, None)
    }

    /// `start`, with the supervisor's address space limited to `as_bytes` (`prlimit`), so a
    /// supervisor that allocates without a bound fails alone instead of exhausting the host.
    fn start_limited(
        &self,
        duration: &str,
        kill_at: Option<&str>,
        trace: Option<&Path>,
        as_bytes: Option<u64>,
    ) -> Run {
        let mut cmd = match as_bytes {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--as={n}")).arg(env!("CARGO_BIN_EXE_takt"));
                c
            }
            None => takt(),
        };
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

/// The run's summary row of task `name`: its jobs.
fn jobs_of(out: &Output, name: &str) -> u64 {
    let t = text(&out.stdout);
    let line = t
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("a row for {name} in {t}"));
    line.split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("jobs in `{line}`"))
}

/// The run ended well and every task of every app ran and reported (its results reached
/// the summary): the supervisor kept every app's results.
fn assert_results_intact(out: &Output) {
    let err = text(&out.stderr);
    assert!(
        out.status.success(),
        "the run ended well: {}\n{err}",
        out.status
    );
    for task in [
        "world",
        "actuator",
        "radar",
        "camera",
        "perception",
        "planner",
        "controller",
    ] {
        assert!(
            jobs_of(out, task) > 0,
            "task {task} ran: {}",
            text(&out.stdout)
        );
    }
    assert!(
        text(&out.stdout).lines().any(|l| l.starts_with("digest: ")),
        "a digest: {}",
        text(&out.stdout)
    );
}

/// #12.3: a FIFO, a `/proc` file whose size lies (0 bytes said, 256 GiB delivered) and an
/// oversize file are each refused with the reason while the run goes on: every app keeps its
/// process, `takt status` answers during the stage, and the run's results are intact. The
/// supervisor's address space is limited (4 GiB), so one that reads without a bound dies
/// alone, as this test's failure, instead of exhausting the host.
#[test]
fn hostile_staged_files_are_refused_and_the_run_keeps_running_and_its_results() {
    needs_realtime!("hostile_staged_files_are_refused_and_the_run_keeps_running_and_its_results");
    let fx = Fixture::new("hostile-stage");
    let run = fx.start_limited("8s", None, None, Some(4 << 30));
    let ctl = fx.ctl();
    let before = wait_running(&ctl);
    let pids: Vec<u64> = ["sensing", "planning", "vehicle"]
        .iter()
        .map(|a| app(&before, a)["pid"].as_u64().expect("pid"))
        .collect();

    let fifo = fx.path("bundle.fifo");
    let st = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(st.success(), "mkfifo {}", fifo.display());
    let err = refused(&["ota", "stage", s(&fifo), "--control", s(&ctl)]);
    assert!(
        err.contains("FIFO") && err.contains("regular file"),
        "{err}"
    );
    println!("FIFO: {}", err.trim());

    // The stage of a lying file runs while `takt status` asks: the supervisor answers.
    let stage =
        Running::spawn(takt().args(["ota", "stage", "/proc/self/pagemap", "--control", s(&ctl)]));
    let during = status(&ctl);
    assert_eq!(during["phase"], "running", "{during}");
    let out = stage.wait(CLI_TIMEOUT, "the stage of /proc/self/pagemap");
    let err = text(&out.stderr);
    assert!(!out.status.success(), "a lying file is refused: {err}");
    assert!(
        err.contains("pagemap") && err.contains("bytes can be read from it"),
        "the reason names the file and the bound: {err}"
    );
    println!("lying file: {}", err.trim());

    let big = fx.path("big.takt");
    let f = std::fs::File::create(&big).expect("create");
    f.set_len(takt::ota::bundle::MAX_BUNDLE_BYTES + 1)
        .expect("a sparse oversize file");
    drop(f);
    let err = refused(&["ota", "stage", s(&big), "--control", s(&ctl)]);
    assert!(err.contains("at most"), "{err}");
    println!("oversize: {}", err.trim());

    let after = status(&ctl);
    assert_eq!(after["phase"], "running", "{after}");
    for (a, pid) in ["sensing", "planning", "vehicle"].iter().zip(&pids) {
        assert_eq!(app(&after, a)["state"], "running", "{after}");
        assert_eq!(
            app(&after, a)["pid"].as_u64(),
            Some(*pid),
            "{a} kept its process: {after}"
        );
    }
    let v = ota_status(&ctl);
    assert_eq!(
        app(&v, "planning")["state"],
        "idle",
        "nothing was staged: {v}"
    );
    let out = run.finish(Duration::from_secs(60));
    assert_results_intact(&out);
}

/// Opens `n` connections to `ctl` that never send anything.
fn idle_clients(ctl: &Path, n: usize) -> Vec<std::os::unix::net::UnixStream> {
    (0..n)
        .filter_map(|_| std::os::unix::net::UnixStream::connect(ctl).ok())
        .collect()
}

/// #12.5: more idle clients than the client cap lock nobody out: `takt status` and
/// `takt stop` answer, a new version's standby registers and switches (hot swap), and a
/// client that sends half a frame is closed after the request timeout.
#[test]
fn idle_clients_beyond_the_cap_lock_out_neither_stop_nor_a_standby() {
    needs_realtime!("idle_clients_beyond_the_cap_lock_out_neither_stop_nor_a_standby");
    let fx = Fixture::new("idle-clients");
    let v2 = fx.sign(2, &app_exe("acc-planning-v2"), "planning-2.takt");
    let run = fx.start("14s", None, None);
    let ctl = fx.ctl();
    wait_running(&ctl);

    let idle = idle_clients(&ctl, 200);
    assert_eq!(idle.len(), 200, "the kernel took every connection");
    let during = status(&ctl);
    assert_eq!(
        during["phase"], "running",
        "status answers beside 200 idle clients"
    );
    let out = ok(&["ota", "stage", s(&v2), "--control", s(&ctl)]);
    assert!(out.contains("staged into slot b"), "{out}");

    // Fresh idle clients right before the activation: the standby registers beside them.
    let idle2 = idle_clients(&ctl, 200);
    let out = ok(&[
        "ota",
        "activate",
        "planning",
        "--hot-swap",
        "--control",
        s(&ctl),
    ]);
    assert!(out.contains("switched to version 2"), "{out}");
    println!("{}", out.trim());

    // Half a frame (a length prefix cut short) is closed after the request timeout.
    let mut half = std::os::unix::net::UnixStream::connect(&ctl).expect("connect");
    use std::io::{Read, Write};
    half.write_all(&[0, 0]).expect("write half a prefix");
    half.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a read timeout");
    let mut buf = [0u8; 16];
    let n = half
        .read(&mut buf)
        .expect("the supervisor closes the half-sent connection (no timeout)");
    assert_eq!(n, 0, "closed without an answer");

    let idle3 = idle_clients(&ctl, 200);
    let out = ok(&["stop", "--control", s(&ctl)]);
    println!("stop beside {} idle clients: {}", idle3.len(), out.trim());
    let out = run.finish(Duration::from_secs(60));
    drop((idle, idle2, idle3));
    assert_results_intact(&out);
}

/// Writes `planning.sh`: app `planning`'s executable in a wrapper that, once hosted,
/// starts from inside the app's process tree `takt mode set parked`, `takt stop` and
/// `takt ota status`, and records each answer in `<name>.out` in the fixture's directory.
fn meddling_planning(fx: &Fixture) -> PathBuf {
    let takt = env!("CARGO_BIN_EXE_takt");
    let real = bin_dir().join("acc-planning");
    let dir = fx.dir.path();
    let ctl = fx.ctl();
    let script = format!(
        r#"#!/bin/sh
if [ "$1" != "--takt-catalog" ]; then
  (
    sleep 2
    "{takt}" mode set parked --control "{ctl}" > "{dir}/mode.tmp" 2>&1; echo "exit $?" >> "{dir}/mode.tmp"; mv "{dir}/mode.tmp" "{dir}/mode.out"
    "{takt}" ota status --control "{ctl}" > "{dir}/ota.tmp" 2>&1; echo "exit $?" >> "{dir}/ota.tmp"; mv "{dir}/ota.tmp" "{dir}/ota.out"
    "{takt}" stop --control "{ctl}" > "{dir}/stop.tmp" 2>&1; echo "exit $?" >> "{dir}/stop.tmp"; mv "{dir}/stop.tmp" "{dir}/stop.out"
  ) &
fi
exec "{real}" "$@"
"#,
        ctl = s(&ctl),
        dir = s(dir),
        real = s(&real),
    );
    let path = fx.path("planning.sh");
    std::fs::write(&path, script).expect("write the wrapper");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let manifest = std::fs::read_to_string(&fx.manifest).expect("the manifest copy");
    let line = manifest
        .lines()
        .find(|l| l.starts_with("executable = ") && l.ends_with("/acc-planning\""))
        .expect("app planning's executable in the manifest copy")
        .to_string();
    std::fs::write(
        &fx.manifest,
        manifest.replacen(&line, &format!("executable = \"{}\"", path.display()), 1),
    )
    .expect("rewrite the manifest copy");
    path
}

/// Waits for `<name>.out` in the fixture's directory (written whole by the wrapper).
fn wrapper_output(fx: &Fixture, name: &str) -> String {
    poll(Duration::from_secs(30), &format!("{name}.out"), || {
        std::fs::read_to_string(fx.path(&format!("{name}.out"))).map_err(|e| e.to_string())
    })
}

/// One request from this process over a raw connection, and the answer.
fn raw_request(ctl: &Path, req: &takt::lifecycle::Request) -> takt::lifecycle::Response {
    let mut c = std::os::unix::net::UnixStream::connect(ctl).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    takt::lifecycle::wire::send(&mut c, req).expect("send");
    takt::lifecycle::wire::receive(&mut c).expect("an answer")
}

/// #12.6: a process started from inside an app's process tree may neither stop the run nor
/// switch its mode nor read its updates, a client that claims to be another app's process
/// is refused, and the owner's `takt stop` still ends the run.
#[test]
fn only_the_owner_may_stop_or_switch_modes_and_an_app_speaks_only_for_itself() {
    needs_realtime!("only_the_owner_may_stop_or_switch_modes_and_an_app_speaks_only_for_itself");
    let fx = Fixture::new("peer");
    meddling_planning(&fx);
    let run = fx.start("30s", None, None);
    let ctl = fx.ctl();
    let before = wait_running(&ctl);
    let planning = app(&before, "planning")["pid"].as_u64().expect("pid");
    let sensing = app(&before, "sensing")["pid"].as_u64().expect("pid");

    for (name, what) in [
        ("mode", "switch modes"),
        ("ota", "touch updates"),
        ("stop", "stop the run"),
    ] {
        let out = wrapper_output(&fx, name);
        println!("{name} from inside app planning's tree: {}", out.trim());
        assert!(!out.contains("exit 0"), "{name} is refused: {out}");
        assert!(
            out.contains(&format!(
                "started by app `planning` (its process {planning})"
            )) && out.contains(what),
            "{name}: the refusal names the peer, its app and the rule: {out}"
        );
    }
    let after = status(&ctl);
    assert_eq!(after["phase"], "running", "not stopped: {after}");
    assert_eq!(
        after["requested_mode"],
        Value::Null,
        "no mode requested: {after}"
    );

    // A client that claims to be app sensing's process.
    let forged = raw_request(
        &ctl,
        &takt::lifecycle::Request::AppReady {
            app: "sensing".into(),
            pid: u32::try_from(sensing).expect("a pid"),
            version: "forged".into(),
        },
    );
    match forged {
        takt::lifecycle::Response::Refused(why) => {
            println!("forged AppReady: {why}");
            assert!(
                why.contains(&format!("claims to be process {sensing} of app `sensing`")),
                "{why}"
            );
        }
        other => panic!("a forged AppReady is refused, got {other:?}"),
    }
    let forged = raw_request(
        &ctl,
        &takt::lifecycle::Request::AppFinished {
            app: "sensing".into(),
            result: Err("forged".into()),
        },
    );
    assert!(
        matches!(forged, takt::lifecycle::Response::Refused(_)),
        "forged results are refused: {forged:?}"
    );
    let still = status(&ctl);
    assert_eq!(
        app(&still, "sensing")["pid"].as_u64(),
        Some(sensing),
        "{still}"
    );
    assert_eq!(app(&still, "sensing")["state"], "running", "{still}");

    let out = ok(&["stop", "--control", s(&ctl)]);
    println!("owner: {}", out.trim());
    let out = run.finish(Duration::from_secs(60));
    assert_results_intact(&out);
}

/// Sets the manifest copy's probation window (the demo's is 1 s).
fn set_probation(fx: &Fixture, window: &str) {
    let m = std::fs::read_to_string(&fx.manifest).expect("the manifest copy");
    assert!(
        m.contains("probation = \"1s\""),
        "the demo's probation line"
    );
    std::fs::write(
        &fx.manifest,
        m.replacen(
            "probation = \"1s\"",
            &format!("probation = \"{window}\""),
            1,
        ),
    )
    .expect("rewrite the manifest copy");
}

fn kill_9(pid: u64) {
    let st = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(st.success(), "kill -9 {pid}");
}

/// #12.4: the replaced version stands by during probation and is `kill -9`ed; the rollback
/// then has no process to return to. The installed version is restarted by the app's
/// restart policy (a new process, one restart), the candidate is marked bad and ends, and
/// `takt status` never shows the app running without a process.
#[test]
fn a_rollback_whose_standby_died_restarts_the_installed_version() {
    needs_realtime!("a_rollback_whose_standby_died_restarts_the_installed_version");
    let fx = Fixture::new("dead-standby");
    set_probation(&fx, "30s");
    let v2 = fx.sign(2, &app_exe("acc-planning-v2"), "planning-2.takt");
    let run = fx.start("20s", None, None);
    let ctl = fx.ctl();
    let before = wait_running(&ctl);
    let installed_pid = app(&before, "planning")["pid"].as_u64().expect("pid");
    ok(&["ota", "stage", s(&v2), "--control", s(&ctl)]);
    let out = ok(&[
        "ota",
        "activate",
        "planning",
        "--hot-swap",
        "--control",
        s(&ctl),
    ]);
    assert!(out.contains("switched to version 2"), "{out}");
    let switched = status(&ctl);
    let candidate_pid = app(&switched, "planning")["pid"].as_u64().expect("pid");
    assert_ne!(candidate_pid, installed_pid, "{switched}");

    kill_9(installed_pid);
    wait_dead(&[installed_pid], Duration::from_secs(10));
    let out = ok(&["ota", "rollback", "planning", "--control", s(&ctl)]);
    println!("rollback: {}", out.trim());

    let after = poll(Duration::from_secs(20), "planning restarted", || {
        let v = status(&ctl);
        let p = app(&v, "planning");
        if p["state"] == "running" {
            assert!(
                p["pid"].as_u64().is_some(),
                "status says running without a process: {v}"
            );
        }
        match p["pid"].as_u64() {
            Some(pid)
                if pid != installed_pid && pid != candidate_pid && p["state"] == "running" =>
            {
                Ok(v)
            }
            _ => Err(format!("last status {v}")),
        }
    });
    let p = app(&after, "planning");
    println!("after the rollback: {p}");
    assert_eq!(p["restarts"], 1, "one restart by the policy: {after}");
    let new_pid = p["pid"].as_u64().expect("pid");
    assert!(alive(new_pid), "the restarted process runs");
    wait_dead(&[candidate_pid], Duration::from_secs(10));
    let v = ota_status(&ctl);
    let a = app(&v, "planning");
    assert_eq!(a["state"], "rolled-back", "{v}");
    assert_eq!(a["running_version"], 0, "{v}");
    assert!(
        a["bad_versions"]
            .as_array()
            .is_some_and(|b| b.contains(&Value::from(2))),
        "version 2 is marked bad: {v}"
    );
    println!("{}", a["last_result"]);
    ok(&["stop", "--control", s(&ctl)]);
    let out = run.finish(Duration::from_secs(60));
    assert_results_intact(&out);
}

fn signal(sig: &str, pid: u64) {
    let st = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(st.success(), "kill {sig} {pid}");
}

/// Stages `bundle`, hot-swaps planning to it, waits for the commit; returns the pid that
/// ran planning before the switch and the one after.
fn hot_swap_and_commit(ctl: &Path, bundle: &Path, version: u64) -> (u64, u64) {
    let before = status(ctl);
    let old = app(&before, "planning")["pid"].as_u64().expect("pid");
    let out = ok(&["ota", "stage", s(bundle), "--control", s(ctl)]);
    assert!(out.contains(&format!("version {version} staged")), "{out}");
    let out = ok(&[
        "ota",
        "activate",
        "planning",
        "--hot-swap",
        "--control",
        s(ctl),
    ]);
    assert!(
        out.contains(&format!("switched to version {version}")),
        "{out}"
    );
    let after = status(ctl);
    let new = app(&after, "planning")["pid"].as_u64().expect("pid");
    (old, new)
}

/// #12.8: the replaced version, standing by during probation, hangs (SIGSTOP: it ignores
/// every signal but SIGKILL). Dismissed at the commit, it never leaves its walk; the
/// supervisor kills it after the dismissal grace, so no orphan holds its ports: the next hot
/// swap commits too, and the run ends with no process of it left.
#[test]
fn a_hung_dismissed_process_is_killed_and_the_next_hot_swap_commits() {
    needs_realtime!("a_hung_dismissed_process_is_killed_and_the_next_hot_swap_commits");
    let fx = Fixture::new("hung-dismissed");
    // A short probation: fewer hyperperiods in which a host stall can pass for an overrun.
    set_probation(&fx, "500ms");
    let exe = app_exe("acc-planning-v2");
    let v2 = fx.sign(2, &exe, "planning-2.takt");
    let v3 = fx.sign(3, &exe, "planning-3.takt");
    let run = fx.start("30s", None, None);
    let ctl = fx.ctl();
    wait_running(&ctl);
    let (v0_pid, v2_pid) = hot_swap_and_commit_start(&ctl, &v2);
    // Hung while it stands by: it will never see its dismissal.
    signal("-STOP", v0_pid);
    poll(Duration::from_secs(20), "planning committed", || {
        let v = ota_status(&ctl);
        if app(&v, "planning")["state"] == "committed" {
            Ok(())
        } else {
            Err(format!("last OTA status {v}"))
        }
    });
    wait_dead(&[v0_pid], Duration::from_secs(60));
    println!("the stopped version 0 (pid {v0_pid}) was killed after its dismissal");

    // The next hot swap: its standby registers and the switch happens (an orphan holding
    // the app's ports made this activation fail). Its probation may still see a host stall
    // as an overrun (#12.9, not this test's subject): then version 3 is rolled back, and
    // the process dismissed is version 3's instead of version 2's.
    let (old, v3_pid) = hot_swap_and_commit(&ctl, &v3, 3);
    assert_eq!(old, v2_pid, "version 2 ran planning until the next swap");
    let end = poll(
        Duration::from_secs(20),
        "version 3's probation ends",
        || {
            let v = ota_status(&ctl);
            let a = app(&v, "planning");
            if a["update_version"] == 3
                && (a["state"] == "committed" || a["state"] == "rolled-back")
            {
                Ok(a.clone())
            } else {
                Err(format!("last OTA status {v}"))
            }
        },
    );
    let (dismissed, runner) = if end["state"] == "committed" {
        (v2_pid, v3_pid)
    } else {
        let why = end["last_result"].as_str().unwrap_or_default().to_string();
        assert!(
            why.contains("overrun"),
            "only a host stall may roll version 3 back: {why}"
        );
        println!("INCONCLUSIVE probation of version 3 (a host stall made a job overrun): {why}");
        (v3_pid, v2_pid)
    };
    wait_dead(&[dismissed], Duration::from_secs(60));
    assert!(alive(runner), "planning runs");
    ok(&["stop", "--control", s(&ctl)]);
    let out = run.finish(Duration::from_secs(90));
    assert_results_intact(&out);
    assert!(
        text(&out.stderr).contains(&format!("(pid {v0_pid}) was dismissed")),
        "the supervisor says it killed the hung process: {}",
        text(&out.stderr)
    );
    wait_no_process(&ctl, &[v0_pid, v2_pid, v3_pid], Duration::from_secs(10));
}

/// Stages `bundle` (version 2) and hot-swaps planning to it; returns (version 0's pid,
/// version 2's pid) right after the switch, during probation.
fn hot_swap_and_commit_start(ctl: &Path, bundle: &Path) -> (u64, u64) {
    let before = status(ctl);
    let old = app(&before, "planning")["pid"].as_u64().expect("pid");
    ok(&["ota", "stage", s(bundle), "--control", s(ctl)]);
    let out = ok(&[
        "ota",
        "activate",
        "planning",
        "--hot-swap",
        "--control",
        s(ctl),
    ]);
    assert!(out.contains("switched to version 2"), "{out}");
    let after = status(ctl);
    (old, app(&after, "planning")["pid"].as_u64().expect("pid"))
}

/// `takt ota sign` of `app` at `version` with `exe`.
fn sign_app(fx: &Fixture, app: &str, version: u64, exe: &Path, out: &str) -> PathBuf {
    let out = fx.path(out);
    ok(&[
        "ota",
        "sign",
        "--key",
        s(&fx.key),
        "--app",
        app,
        "--version",
        &version.to_string(),
        "--executable",
        s(exe),
        "--manifest",
        s(&fx.manifest),
        "--out",
        s(&out),
    ]);
    out
}

/// The fields of `/proc/<pid>/stat` after the command name: state, ppid, ...; `None` when
/// there is no such process (it was reaped).
fn proc_stat(pid: u64) -> Option<Vec<String>> {
    let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = st.rsplit_once(") ")?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Waits until `pid` is neither running nor a zombie of `parent`: it ended and `parent`
/// reaped it (a pid reused by a process of another parent counts as reaped).
fn wait_reaped(pid: u64, parent: u64, timeout: Duration) {
    let until = Instant::now() + timeout;
    loop {
        match proc_stat(pid) {
            None => return,
            Some(f) if f.get(1).and_then(|p| p.parse::<u64>().ok()) != Some(parent) => return,
            Some(f) => assert!(
                Instant::now() < until,
                "pid {pid} (state {}) is not reaped by {parent} after {timeout:?}",
                f[0]
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Threads of `pid` scheduled SCHED_FIFO (policy field 41 of `/proc/<pid>/task/*/stat`).
fn fifo_threads(pid: u64) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("stat")).is_ok_and(|st| {
                st.rsplit_once(") ")
                    .and_then(|(_, rest)| rest.split_whitespace().nth(38).map(|p| p == "1"))
                    .unwrap_or(false)
            })
        })
        .count()
}

/// Live children of `parent` whose command line says `--app <app>` and `--standby`.
fn standbys_of(parent: u64, app: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        let Some(f) = proc_stat(pid) else { continue };
        if f[0] == "Z" || f.get(1).and_then(|p| p.parse::<u64>().ok()) != Some(parent) {
            continue;
        }
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
        let names_app = args
            .windows(2)
            .any(|w| w[0] == b"--app" && w[1] == app.as_bytes());
        if names_app && args.contains(&&b"--standby"[..]) {
            out.push(pid);
        }
    }
    out
}

/// Hot-swaps `app` to its staged `version` and waits until the probation ends; a
/// rollback is accepted only for an overrun a host stall caused (printed INCONCLUSIVE,
/// as in the test above). The switch itself must happen: a publisher slot still held by
/// an orphan of the app makes the new version's standby fail before it.
fn hot_swap_to_the_end(ctl: &Path, app_name: &str, version: u64) {
    let out = ok(&[
        "ota",
        "activate",
        app_name,
        "--hot-swap",
        "--control",
        s(ctl),
    ]);
    assert!(
        out.contains(&format!("switched to version {version}")),
        "{app_name}: {out}"
    );
    let end = poll(
        Duration::from_secs(20),
        &format!("{app_name} version {version}'s probation ends"),
        || {
            let v = ota_status(ctl);
            let a = app(&v, app_name);
            if a["update_version"] == version
                && (a["state"] == "committed" || a["state"] == "rolled-back")
            {
                Ok(a.clone())
            } else {
                Err(format!("last OTA status {v}"))
            }
        },
    );
    if end["state"] != "committed" {
        let why = end["last_result"].as_str().unwrap_or_default().to_string();
        assert!(
            why.contains("overrun"),
            "only a host stall may roll {app_name} {version} back: {why}"
        );
        println!("INCONCLUSIVE probation of {app_name} {version} (a host stall made a job overrun): {why}");
    }
}

/// #12.8: two dismissals before the first dismissed process has seen its own. The shared
/// block holds one dismissal at a time; a second one written over the first names another
/// process, so the first never sees it and would be left standing by (and killed only
/// after the dismissal grace, or orphaned when no grace existed).
///
/// Reachable path, made certain: planning's hot swap commits and dismisses version 0, which
/// a platform stall keeps from reaching its next boundary (SIGSTOP here, as a host that
/// deschedules it would); then sensing's activation, waiting for an update-safe mode
/// (`--at-safe-state` in `drive`), is withdrawn by the owner (`takt ota rollback`), which
/// dismisses sensing's joined standby. The second dismissal must wait in line: sensing's standby still runs
/// after its withdrawal; once the stall ends (SIGCONT), planning version 0 sees its
/// dismissal and ends by itself, and then sensing's standby gets its own and ends. Both
/// are reaped by the supervisor, neither is killed, and the next hot swap of each app
/// switches (no publisher slot is left behind), and the run ends well.
#[test]
fn two_dismissals_before_the_first_is_seen_both_end_and_are_reaped() {
    needs_realtime!("two_dismissals_before_the_first_is_seen_both_end_and_are_reaped");
    let fx = Fixture::new("two-dismissals");
    set_probation(&fx, "500ms");
    let planning_exe = app_exe("acc-planning-v2");
    let sensing_exe = app_exe("acc-sensing");
    let p2 = sign_app(&fx, "planning", 2, &planning_exe, "planning-2.takt");
    let p3 = sign_app(&fx, "planning", 3, &planning_exe, "planning-3.takt");
    let s1 = sign_app(&fx, "sensing", 1, &sensing_exe, "sensing-1.takt");
    let run = fx.start("40s", None, None);
    let sup = u64::from(run.0.as_ref().expect("running").id());
    let ctl = fx.ctl();
    wait_running(&ctl);
    ok(&["ota", "stage", s(&s1), "--control", s(&ctl)]);

    // Dismissal 1: planning version 0, stalled before it can see it.
    let (v0_pid, v2_pid) = hot_swap_and_commit_start(&ctl, &p2);
    signal("-STOP", v0_pid);
    poll(Duration::from_secs(20), "planning committed", || {
        let v = ota_status(&ctl);
        if app(&v, "planning")["state"] == "committed" {
            Ok(())
        } else {
            Err(format!("last OTA status {v}"))
        }
    });

    // Dismissal 2: sensing's standby, ready and standing by (its activation waits for an
    // update-safe mode, which `drive` is not), withdrawn by the owner.
    let activate = Running::spawn(takt().args([
        "ota",
        "activate",
        "sensing",
        "--at-safe-state",
        "--timeout",
        "60s",
        "--control",
        s(&ctl),
    ]));
    let standby = poll(
        Duration::from_secs(20),
        "sensing's standby started",
        || match standbys_of(sup, "sensing").as_slice() {
            [pid] => Ok(*pid),
            other => Err(format!("standbys of sensing: {other:?}")),
        },
    );
    // Ready once its dispatchers are pinned under SCHED_FIFO (then it reports ready).
    poll(
        Duration::from_secs(20),
        "sensing's standby under SCHED_FIFO",
        || {
            if fifo_threads(standby) > 0 {
                Ok(())
            } else {
                Err(format!("pid {standby} has no SCHED_FIFO thread yet"))
            }
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    let out = ok(&["ota", "rollback", "sensing", "--control", s(&ctl)]);
    assert!(out.contains("withdrawn before its switch"), "{out}");
    let out = activate.wait(CLI_TIMEOUT, "the withdrawn activation");
    assert!(!out.status.success(), "{}", text(&out.stdout));
    // In line behind the stalled one: it has not been told to go yet.
    std::thread::sleep(Duration::from_millis(300));
    if !alive(standby) {
        let _ = Command::new("kill")
            .args(["-CONT", &v0_pid.to_string()])
            .status();
        let _ = cli(&["stop", "--control", s(&ctl)], CLI_TIMEOUT);
        let out = run.finish(Duration::from_secs(90));
        panic!(
            "sensing's standby (pid {standby}) ended before planning version 0 saw its dismissal: {}",
            text(&out.stderr)
        );
    }
    assert!(
        alive(standby),
        "sensing's standby (pid {standby}) ended before planning version 0 saw its dismissal"
    );
    assert!(alive(v0_pid), "planning version 0 is stalled, not ended");

    // The stall ends: each process leaves by its own dismissal, one after the other.
    signal("-CONT", v0_pid);
    wait_reaped(v0_pid, sup, Duration::from_secs(30));
    wait_reaped(standby, sup, Duration::from_secs(30));
    println!("planning version 0 (pid {v0_pid}) and sensing's standby (pid {standby}) ended and were reaped");
    assert!(alive(v2_pid), "planning version 2 runs");

    // No publisher slot is held by a leftover: the next hot swap of each app switches.
    ok(&["ota", "stage", s(&p3), "--control", s(&ctl)]);
    hot_swap_to_the_end(&ctl, "planning", 3);
    hot_swap_to_the_end(&ctl, "sensing", 1);
    ok(&["stop", "--control", s(&ctl)]);
    let out = run.finish(Duration::from_secs(90));
    assert_results_intact(&out);
    let err = text(&out.stderr);
    assert!(
        !err.contains("has not ended; killing it"),
        "both dismissed processes ended by their dismissal, none was killed: {err}"
    );
    let ready = err.find("app `sensing` version 1 is ready");
    let withdrawn = err.find("activation of version 1 withdrawn");
    assert!(
        matches!((ready, withdrawn), (Some(r), Some(w)) if r < w),
        "sensing's standby was ready (joined, so dismissed rather than killed) before the withdrawal: {err}"
    );
    wait_no_process(&ctl, &[v0_pid, v2_pid, standby], Duration::from_secs(10));
}

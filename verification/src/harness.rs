//! Driving the shipped binaries the way an integrator does, for the fault-injection suite
//! (`tests/faults.rs`) and the soak (`takt-soak`): a private world per case (a signing key,
//! a copy of the ACC manifest that trusts it, a control socket, a state directory, trace
//! files), `takt run` in the background, the CLI verbs with timeouts, and the invariants
//! checked after every case.
//!
//! Owns: starting and stopping real `takt` processes and reading what they leave behind
//! (`/proc`, `/dev/shm`, trace files, the state directory). It must never wait without a
//! timeout, and it never decides what a test asserts: every check returns what it saw.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a CLI verb may take before it counts as hung (and is killed).
pub const CLI_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a run may take to start every app.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// The answer time the supervisor promises for `takt status`, whatever else it does.
pub const STATUS_PROMISE: Duration = Duration::from_secs(1);

/// The repository's root (this crate is `verification/` in it).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// Where the shipped executables are: `$TAKT_BIN_DIR`, else the workspace's
/// `target/release` (the README's test command builds it before the tests run).
pub fn bin_dir() -> PathBuf {
    std::env::var_os("TAKT_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target").join("release"))
}

/// An executable of `bin_dir()`, or why it cannot be used.
pub fn executable(name: &str) -> Result<PathBuf, String> {
    let p = bin_dir().join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "{} is missing: build the workspace first (`cargo build --release`) or set TAKT_BIN_DIR",
            p.display()
        ))
    }
}

/// Whether this process runs as root (SCHED_FIFO, mounts, other users' processes).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A started process whose output pipes are drained while it runs (a chatty process never
/// blocks on a full pipe). Dropping it kills the process.
pub struct Running {
    child: Option<Child>,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl Running {
    pub fn spawn(cmd: &mut Command) -> Result<Running, String> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut bytes);
                }
                bytes
            })
        };
        let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
        Ok(Running {
            child: Some(child),
            stdout: Some(stdout),
            stderr: Some(stderr),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether the process has ended (without reaping what `wait` needs).
    pub fn ended(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Waits at most `timeout` for the end; a process still running then is killed and the
    /// error says so with its stderr.
    pub fn wait(mut self, timeout: Duration) -> Result<Output, String> {
        let Some(mut child) = self.child.take() else {
            return Err("the process was already collected".into());
        };
        let until = Instant::now() + timeout;
        let status: Option<ExitStatus> = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let stdout = self
            .stdout
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        match status {
            Some(status) => Ok(Output {
                status,
                stdout,
                stderr,
            }),
            None => Err(format!(
                "still running after {timeout:?} (killed); stderr:\n{}",
                text(&stderr)
            )),
        }
    }

    /// SIGKILL, as a crash or the OOM killer would.
    pub fn kill_9(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// `takt args...` with `timeout`.
pub fn takt(args: &[&str], timeout: Duration) -> Result<Output, String> {
    let exe = executable("takt")?;
    Running::spawn(Command::new(exe).args(args))?
        .wait(timeout)
        .map_err(|e| format!("takt {args:?}: {e}"))
}

/// `takt args...`, which must exit 0; its stdout.
pub fn takt_ok(args: &[&str]) -> Result<String, String> {
    let out = takt(args, CLI_TIMEOUT)?;
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(format!(
            "takt {args:?}: {}\n{}{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        ))
    }
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// One case's private world: a temporary directory holding a signing key, a copy of the
/// ACC demo manifest whose `[ota]` trusts it (executables made absolute), the control
/// socket, the state directory and the trace files.
pub struct World {
    pub dir: tempfile::TempDir,
    pub manifest: PathBuf,
    pub key: PathBuf,
}

impl World {
    pub fn acc(tag: &str) -> Result<World, String> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("takt-fault-{tag}-"))
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let key = dir.path().join("dev.key");
        takt_ok(&["ota", "keygen", "--out", s(&key)])?;
        let public = std::fs::read_to_string(dir.path().join("dev.key.pub"))
            .map_err(|e| format!("dev.key.pub: {e}"))?;
        let source_path = workspace_root().join("config").join("acc.toml");
        let source = std::fs::read_to_string(&source_path)
            .map_err(|e| format!("{}: {e}", source_path.display()))?;
        let config_dir = workspace_root().join("config");
        // Executables are relative to the manifest's directory; the copy lives elsewhere.
        let mut copy = String::new();
        for line in source.lines() {
            match line
                .strip_prefix("executable = \"")
                .and_then(|r| r.strip_suffix('"'))
            {
                Some(rel) if !rel.starts_with('/') => {
                    copy.push_str(&format!(
                        "executable = \"{}\"\n",
                        config_dir.join(rel).display()
                    ));
                }
                _ => {
                    copy.push_str(line);
                    copy.push('\n');
                }
            }
        }
        if copy.matches("\n[ota]\n").count() != 1 {
            return Err(format!(
                "{}: expected one [ota] table",
                source_path.display()
            ));
        }
        let copy = copy.replacen(
            "\n[ota]\n",
            &format!("\n[ota]\ntrusted_keys = [\"{}\"]\n", public.trim()),
            1,
        );
        let manifest = dir.path().join("acc.toml");
        std::fs::write(&manifest, copy).map_err(|e| format!("write the manifest: {e}"))?;
        Ok(World { dir, manifest, key })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn ctl(&self) -> PathBuf {
        self.path("ctl.sock")
    }

    pub fn state(&self) -> PathBuf {
        self.path("state")
    }

    /// The trace prefix of run `tag`: each process writes `<prefix>.<app>[.<n>]`.
    pub fn trace(&self, tag: &str) -> PathBuf {
        self.path(&format!("{tag}.takt"))
    }

    /// `takt run` of the world's manifest with OTA and traces (prefix [`World::trace`] of
    /// `tag`), in the background.
    pub fn start(&self, tag: &str, duration: &str) -> Result<Running, String> {
        self.start_with(tag, duration, &self.state())
    }

    pub fn start_with(&self, tag: &str, duration: &str, state: &Path) -> Result<Running, String> {
        let exe = executable("takt")?;
        Running::spawn(Command::new(exe).args([
            "run",
            s(&self.manifest),
            "--duration",
            duration,
            "--quiet",
            "--ota-dir",
            s(state),
            "--control",
            s(&self.ctl()),
            "--trace",
            s(&self.trace(tag)),
        ]))
    }

    /// `takt ota sign` of `app` at `version` with executable `exe`.
    pub fn sign(&self, app: &str, version: u64, exe: &Path) -> Result<PathBuf, String> {
        let out = self.path(&format!("{app}-{version}.takt"));
        let v = version.to_string();
        takt_ok(&[
            "ota",
            "sign",
            "--key",
            s(&self.key),
            "--app",
            app,
            "--version",
            &v,
            "--executable",
            s(exe),
            "--manifest",
            s(&self.manifest),
            "--out",
            s(&out),
        ])?;
        Ok(out)
    }

    /// The trace files the processes of run `tag` wrote, sorted.
    pub fn trace_files(&self, tag: &str) -> Vec<PathBuf> {
        let prefix = format!("{tag}.takt.");
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// `takt ota status --json` read from the state directory (no supervisor).
    pub fn ota_offline(&self) -> Result<Value, String> {
        let out = takt_ok(&[
            "ota",
            "status",
            "--json",
            "--manifest",
            s(&self.manifest),
            "--ota-dir",
            s(&self.state()),
        ])?;
        serde_json::from_str(&out).map_err(|e| format!("ota status is not JSON ({e}): {out}"))
    }
}

/// One `takt status --json` with its answer time, or why there was none.
pub fn status(ctl: &Path) -> Result<(Value, Duration), String> {
    let started = Instant::now();
    let out = takt(&["status", "--json", "--control", s(ctl)], CLI_TIMEOUT)?;
    let took = started.elapsed();
    if !out.status.success() {
        return Err(format!(
            "takt status: {}: {}",
            out.status,
            text(&out.stderr)
        ));
    }
    let v = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("status is not JSON ({e}): {}", text(&out.stdout)))?;
    Ok((v, took))
}

/// `takt ota status --json` from the running supervisor.
pub fn ota_live(ctl: &Path) -> Result<Value, String> {
    let out = takt_ok(&["ota", "status", "--json", "--control", s(ctl)])?;
    serde_json::from_str(&out).map_err(|e| format!("ota status is not JSON ({e}): {out}"))
}

/// Calls `probe` every 100 ms until it returns `Ok`, at most `timeout`.
pub fn poll<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let until = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(v) => return Ok(v),
            Err(last) if Instant::now() >= until => {
                return Err(format!("{what}: not within {timeout:?}; last: {last}"))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Waits until every app runs and a few hyperperiods have passed.
pub fn wait_running(ctl: &Path) -> Result<Value, String> {
    poll(START_TIMEOUT, "every app running", || {
        let (v, _) = status(ctl)?;
        let running = v["phase"] == "running"
            && v["cycle"].as_u64().unwrap_or(0) > 5
            && v["apps"]
                .as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(|x| x["state"] == "running"));
        if running {
            Ok(v)
        } else {
            Err(format!("status {v}"))
        }
    })
}

/// App `name` of a `takt status` (`name`) or `takt ota status` (`app`) report.
pub fn app<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v["apps"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == name || x["app"] == name))
}

/// What a [`StatusProbe`] saw.
#[derive(Clone, Debug, Default)]
pub struct ProbeReport {
    pub answered: u64,
    /// Requests without an answer (refused, or no answer within [`CLI_TIMEOUT`]).
    pub unanswered: Vec<String>,
    pub max_latency: Duration,
    /// Answers slower than [`STATUS_PROMISE`].
    pub slow: u64,
}

/// Asks `takt status` every 100 ms in a thread until stopped, recording every answer time.
pub struct StatusProbe {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<ProbeReport>>,
}

impl StatusProbe {
    pub fn start(ctl: &Path) -> StatusProbe {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let ctl = ctl.to_path_buf();
        let handle = std::thread::spawn(move || {
            let mut r = ProbeReport::default();
            while !flag.load(Ordering::Relaxed) {
                match status(&ctl) {
                    Ok((_, took)) => {
                        r.answered += 1;
                        r.max_latency = r.max_latency.max(took);
                        if took > STATUS_PROMISE {
                            r.slow += 1;
                        }
                    }
                    Err(e) => r.unanswered.push(e),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            r
        });
        StatusProbe {
            stop,
            handle: Some(handle),
        }
    }

    pub fn finish(mut self) -> ProbeReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for StatusProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Pids of live (not zombie) processes whose command line has an argument equal to `arg`
/// (every process of one run carries its control socket path) or starting with it.
pub fn processes_with(arg: &Path) -> Vec<u32> {
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
        if !cmdline.split(|&b| b == 0).any(|a| a.starts_with(needle)) {
            continue;
        }
        if alive(pid) {
            pids.push(pid);
        }
    }
    pids
}

pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|st| {
            st.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

/// SIGKILL to any pid (not only our children), as a crash or the OOM killer would end it.
/// Through the runtime (no `kill` program needed on the machine).
pub fn kill_9(pid: u32) -> Result<(), String> {
    if !alive(pid) {
        return Err(format!("kill -9 {pid}: no such live process"));
    }
    takt::process::kill_hard(pid);
    Ok(())
}

/// Invariant: no process of the world remains (any whose command line names a path in its
/// directory, or one of `pids`), waiting at most `timeout` for exits in progress.
pub fn no_orphans(world: &World, pids: &[u32], timeout: Duration) -> Result<(), String> {
    poll(timeout, "no process of the run left", || {
        let mut left = processes_with(world.dir.path());
        left.extend(pids.iter().copied().filter(|&p| alive(p)));
        left.sort_unstable();
        left.dedup();
        if left.is_empty() {
            Ok(())
        } else {
            let described: Vec<String> = left
                .iter()
                .map(|p| {
                    let cmd = std::fs::read(format!("/proc/{p}/cmdline"))
                        .map(|c| text(&c).replace('\0', " "))
                        .unwrap_or_default();
                    format!("{p}: {}", cmd.chars().take(120).collect::<String>())
                })
                .collect();
            Err(format!("still alive: {described:?}"))
        }
    })
}

/// The entries of `/dev/shm`, where takt's iceoryx2 directory
/// ([`takt::port::ICEORYX2_ROOT`]) counts by the node and service descriptions inside it
/// (`takt-iceoryx2/nodes/<id>`), not as one entry that stays once made.
pub fn shm_entries() -> BTreeSet<String> {
    let names = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let root = std::path::Path::new(takt::port::ICEORYX2_ROOT);
    let mut entries = BTreeSet::new();
    for name in names(std::path::Path::new("/dev/shm")) {
        // Path equality compares components, so the root's trailing `/` does not matter.
        if std::path::Path::new("/dev/shm").join(&name) != root {
            entries.insert(name);
            continue;
        }
        for sub in names(root) {
            let inner = names(&root.join(&sub));
            entries.extend(inner.into_iter().map(|n| format!("{name}/{sub}/{n}")));
        }
    }
    entries
}

/// Invariant: `/dev/shm` holds nothing that was not there at `baseline` (waiting at most
/// `timeout` for processes that are still exiting to unlink theirs).
pub fn no_stale_shm(baseline: &BTreeSet<String>, timeout: Duration) -> Result<(), String> {
    poll(timeout, "no shared memory left behind", || {
        let extra: Vec<String> = shm_entries().difference(baseline).cloned().collect();
        if extra.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} new entries in /dev/shm: {extra:?}",
                extra.len()
            ))
        }
    })
}

/// The release accounting of `takt trace report --json` over `files`.
#[derive(Clone, Debug)]
pub struct Accounting {
    pub planned: u64,
    pub seen: u64,
    pub missed: u64,
    pub duplicate: u64,
    /// Per task: (name, missed, duplicate, number of missed ranges).
    pub tasks: Vec<(String, u64, u64, u64)>,
    pub report: Value,
}

pub fn accounting(files: &[PathBuf]) -> Result<Accounting, String> {
    if files.is_empty() {
        return Err("the run wrote no trace file".into());
    }
    let mut args = vec!["trace", "report", "--json"];
    args.extend(files.iter().map(|f| s(f)));
    let out = takt_ok(&args)?;
    let report: Value =
        serde_json::from_str(&out).map_err(|e| format!("report is not JSON ({e})"))?;
    let r = &report["releases"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let tasks = report["tasks"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    let rel = &t["releases"];
                    (
                        t["name"].as_str().unwrap_or("?").to_string(),
                        n(&rel["missed"]),
                        n(&rel["duplicate"]),
                        rel["missed_jobs"].as_array().map_or(0, |a| a.len() as u64),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Accounting {
        planned: n(&r["planned"]),
        seen: n(&r["seen"]),
        missed: n(&r["missed"]),
        duplicate: n(&r["duplicate"]),
        tasks,
        report,
    })
}

/// Which app hosts each task of `manifest` (`[[task]] name` -> `app`), read from the file.
pub fn task_apps(manifest: &Path) -> Result<std::collections::BTreeMap<String, String>, String> {
    let text =
        std::fs::read_to_string(manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let doc: toml::Value =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let mut out = std::collections::BTreeMap::new();
    for t in doc
        .get("task")
        .and_then(|t| t.as_array())
        .into_iter()
        .flatten()
    {
        if let (Some(name), Some(app)) = (
            t.get("name").and_then(|v| v.as_str()),
            t.get("app").and_then(|v| v.as_str()),
        ) {
            out.insert(name.to_string(), app.to_string());
        }
    }
    Ok(out)
}

/// Invariant: every planned release is accounted for. Seen + missed = planned for every
/// task; no release twice; and a task misses releases only if its app's process was
/// killed, at most one missed range per kill (the cycles between the death and the restart).
pub fn releases_accounted(
    a: &Accounting,
    apps: &std::collections::BTreeMap<String, String>,
    kills: &[(&str, u64)],
) -> Result<(), String> {
    if a.planned == 0 {
        return Err(format!(
            "no release planned at all: {}",
            a.report["releases"]
        ));
    }
    if a.seen + a.missed < a.planned {
        return Err(format!(
            "planned {} but seen {} + missed {}: releases unaccounted for",
            a.planned, a.seen, a.missed
        ));
    }
    let mut wrong = Vec::new();
    for (task, missed, duplicate, ranges) in &a.tasks {
        let app = apps.get(task).map_or("?", String::as_str);
        let allowed = kills.iter().find(|(k, _)| *k == app).map_or(0, |&(_, n)| n);
        if *duplicate > 0 {
            wrong.push(format!("{task}: {duplicate} release(s) twice"));
        }
        if *missed > 0 && *ranges > allowed {
            wrong.push(format!(
                "{task} (app {app}): {missed} missed release(s) in {ranges} range(s), but its app was killed {allowed} time(s)"
            ));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

/// Invariant: old or new version, never a mix. Every app of the OTA report runs the version
/// its journal has installed or the one on probation, from a complete slot.
pub fn one_version_per_app(ota: &Value) -> Result<(), String> {
    let apps = ota["apps"]
        .as_array()
        .ok_or_else(|| format!("no apps in the OTA report: {ota}"))?;
    for a in apps {
        let name = a["app"].as_str().unwrap_or("?");
        let running = &a["running_version"];
        let installed = &a["installed_version"];
        let state = a["state"].as_str().unwrap_or("?");
        if state != "probation" && running != installed && !running.is_null() {
            return Err(format!(
                "app {name}: runs version {running} but version {installed} is installed (state {state})"
            ));
        }
    }
    Ok(())
}

/// A log of checked invariants: name -> (held, failed), for the summary the soak and the
/// suite print.
#[derive(Default)]
pub struct Tally {
    counts: Mutex<std::collections::BTreeMap<String, (u64, Vec<String>)>>,
}

impl Tally {
    pub fn check(&self, name: &str, r: Result<(), String>) -> bool {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let e = c.entry(name.to_string()).or_default();
        match r {
            Ok(()) => {
                e.0 += 1;
                true
            }
            Err(why) => {
                eprintln!("INVARIANT BROKEN {name}: {why}");
                e.1.push(why);
                false
            }
        }
    }

    pub fn broken(&self) -> u64 {
        let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.values().map(|(_, f)| f.len() as u64).sum()
    }

    pub fn summary(&self) -> String {
        let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::from("invariant                                   held  broken\n");
        for (name, (held, failed)) in c.iter() {
            out.push_str(&format!("{name:<42} {held:>5} {:>7}\n", failed.len()));
        }
        out
    }
}

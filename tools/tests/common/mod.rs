//! What several test files of the CLI share.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `config/acc.toml`'s text with its apps' executables made absolute, so a copy written
/// elsewhere still names the demo's executables (relative paths resolve against the
/// manifest's own directory).
#[allow(dead_code)] // not every test file writes manifests
pub fn absolute_executables(text: &str) -> String {
    let release = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/");
    text.replace(
        "executable = \"../target/release/",
        &format!("executable = \"{}", release.display()),
    )
}

/// What a `takt run` summary's `attribution:` line says about the run's misses (see
/// `takt::dispatch::attribution`).
#[allow(dead_code)] // not every test file judges runs
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunVerdict {
    /// No overrun, skip or deadline miss.
    Kept,
    /// Every miss is the platform's: `(count, the attribution line)`.
    PlatformOnly(u64, String),
    /// Some miss is takt's or the task's (or the summary has no attribution line).
    Takt(String),
}

/// Judges a `takt run` summary by its line `attribution: platform N (overruns a, deadline
/// misses b, skips c), takt/task M (overruns d, deadline misses e, skips f); ...`: by the
/// deadline misses and skips of each class, which are what can make outputs differ (an
/// overrun that neither missed nor skipped leaves them alone, whoever caused it).
#[allow(dead_code)]
pub fn run_verdict(stdout: &str) -> RunVerdict {
    let Some(line) = stdout.lines().find(|l| l.starts_with("attribution: ")) else {
        return RunVerdict::Takt(format!("no attribution line in the summary:\n{stdout}"));
    };
    // The misses and skips inside the parentheses after `class`.
    let misses = |class: &str| -> Option<u64> {
        let rest = &line[line.find(class)? + class.len()..];
        let inside = &rest[..rest.find(')')?];
        let number_after = |key: &str| -> Option<u64> {
            let r = &inside[inside.find(key)? + key.len()..];
            r.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        };
        Some(number_after("deadline misses ")? + number_after("skips ")?)
    };
    match (misses("platform "), misses("takt/task ")) {
        (Some(0), Some(0)) => RunVerdict::Kept,
        (Some(p), Some(0)) => RunVerdict::PlatformOnly(p, line.to_string()),
        _ => RunVerdict::Takt(line.to_string()),
    }
}

/// Reports a test whose real-time run only the platform spoilt: `INCONCLUSIVE <test>: ...`
/// on stderr and, when `TAKT_INCONCLUSIVE_LOG` names a file (the test command sets it), a
/// line there, so the test command counts and names it.
#[allow(dead_code)]
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

#[test]
fn run_verdicts_follow_the_attribution_line() {
    let line = |p: (u64, u64, u64), t: (u64, u64, u64)| {
        format!(
            "overruns: 0, deadline misses: 0\nattribution: platform {} (overruns {}, deadline misses {}, skips {}), takt/task {} (overruns {}, deadline misses {}, skips {}); longest time off the CPU in one job 1us\n",
            p.0 + p.1 + p.2, p.0, p.1, p.2, t.0 + t.1 + t.2, t.0, t.1, t.2
        )
    };
    assert_eq!(run_verdict(&line((0, 0, 0), (0, 0, 0))), RunVerdict::Kept);
    assert_eq!(
        run_verdict(&line((0, 0, 0), (1, 0, 0))),
        RunVerdict::Kept,
        "an overrun that missed nothing leaves outputs alone"
    );
    assert!(matches!(
        run_verdict(&line((0, 2, 1), (0, 0, 0))),
        RunVerdict::PlatformOnly(3, _)
    ));
    assert!(matches!(
        run_verdict(&line((0, 2, 0), (0, 1, 0))),
        RunVerdict::Takt(_)
    ));
    assert!(matches!(run_verdict("digest: 00\n"), RunVerdict::Takt(_)));
}

/// The manifest's SCHED_FIFO priority: the probe asks for what the runs will ask for.
#[allow(dead_code)]
pub const RT_PRIORITY: u8 = 80;
/// How long a CLI call may take before a test gives up on it (catches hangs). A stage of a
/// 35 MB bundle takes about a second; an activation waits for its switch.
#[allow(dead_code)]
pub const CLI_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a supervisor may take to answer its first status after it was started.
#[allow(dead_code)]
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The `takt` binary this test build made.
#[allow(dead_code)]
pub fn takt() -> Command {
    Command::new(env!("CARGO_BIN_EXE_takt"))
}

/// The demo deployment's manifest in the source tree.
#[allow(dead_code)]
pub fn source_manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/acc.toml")
}

#[allow(dead_code)]
pub fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

#[allow(dead_code)]
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[allow(dead_code)]
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Real-time runs of one deployment on the same cores at the same SCHED_FIFO priority
/// would take each other's windows: the tests of one file run one at a time.
#[allow(dead_code)]
pub static REALTIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Skips the test without root or without SCHED_FIFO, and otherwise holds the
/// one-real-time-run-at-a-time lock until the test ends (a failed test's poisoned lock is
/// taken over: it only orders runs). Needs `mod common;` with `#[macro_use]`.
#[allow(unused_macros)]
macro_rules! needs_realtime {
    ($name:literal) => {
        if !common::is_root() {
            eprintln!(concat!("SKIPPED ", $name, ": needs root for SCHED_FIFO"));
            return;
        }
        if let Err(why) = takt::dispatch::probe_realtime(common::RT_PRIORITY) {
            eprintln!(concat!("SKIPPED ", $name, ": {}"), why);
            return;
        }
        let _realtime = common::REALTIME.lock().unwrap_or_else(|p| p.into_inner());
    };
}

/// A started command whose output is read while it runs, so a large report cannot fill a
/// pipe and stall it; killed and reaped when dropped unfinished (a failing test leaves
/// nothing running).
#[allow(dead_code)]
pub struct Running {
    child: Option<Child>,
    stdout: Option<std::thread::JoinHandle<Vec<u8>>>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

#[allow(dead_code)]
impl Running {
    pub fn spawn(cmd: &mut Command) -> Running {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the command starts");
        let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
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
        Running {
            child: Some(child),
            stdout: Some(stdout),
            stderr: Some(stderr),
        }
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Kills the command and reaps it (a test that fails before the command ended).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits at most `timeout` for the command to end (then kills it and fails).
    pub fn wait(mut self, timeout: Duration, what: &str) -> Output {
        let mut child = self.child.take().expect("running");
        let until = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let err = self
                        .stderr
                        .take()
                        .map(|h| h.join().unwrap_or_default())
                        .unwrap_or_default();
                    panic!("{what} did not end within {timeout:?}\n{}", text(&err));
                }
            }
        };
        let join = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
            h.map(|h| h.join().expect("a pipe reader"))
                .unwrap_or_default()
        };
        Output {
            status,
            stdout: join(self.stdout.take()),
            stderr: join(self.stderr.take()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `cmd` to its end, killing it after `limit` (a hang fails the test).
#[allow(dead_code)]
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    Running::spawn(cmd).wait(limit, &what)
}

/// Runs `takt args...` and waits for it at most `timeout` (then kills it and fails).
#[allow(dead_code)]
pub fn cli(args: &[&str], timeout: Duration) -> Output {
    Running::spawn(takt().args(args)).wait(timeout, &format!("takt {args:?}"))
}

/// Runs `takt args...`, which must succeed; returns its stdout.
#[allow(dead_code)]
pub fn ok(args: &[&str]) -> String {
    let out = cli(args, CLI_TIMEOUT);
    assert!(
        out.status.success(),
        "takt {args:?}: {}\n{}",
        out.status,
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The release executable `name` beside the takt binary (built before the tests).
#[allow(dead_code)]
pub fn release_exe(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/release")
        .join(name);
    assert!(
        p.is_file(),
        "{} is built before the tests (cargo build --release --workspace)",
        p.display()
    );
    p
}

/// A temporary directory with a signing key (`dev.key`) and a copy of the demo manifest
/// that trusts it, for OTA tests.
#[allow(dead_code)]
pub struct OtaFixture {
    pub dir: tempfile::TempDir,
    pub manifest: PathBuf,
    pub key: PathBuf,
}

#[allow(dead_code)]
impl OtaFixture {
    pub fn new(tag: &str) -> OtaFixture {
        let dir = tempfile::Builder::new()
            .prefix(&format!("takt-ota-{tag}-"))
            .tempdir()
            .expect("temp dir");
        let key = dir.path().join("dev.key");
        ok(&["ota", "keygen", "--out", s(&key)]);
        let public = std::fs::read_to_string(dir.path().join("dev.key.pub")).expect("pub");
        let source = absolute_executables(
            &std::fs::read_to_string(source_manifest()).expect("config/acc.toml"),
        );
        let copy = source.replacen(
            "\n[ota]\n",
            &format!("\n[ota]\ntrusted_keys = [\"{}\"]\n", public.trim()),
            1,
        );
        let manifest = dir.path().join("acc.toml");
        std::fs::write(&manifest, copy).expect("write the manifest copy");
        OtaFixture { dir, manifest, key }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn state(&self) -> PathBuf {
        self.path("state")
    }
}

/// Calls `probe` every 100 ms until it answers, failing the test after [`START_TIMEOUT`].
#[allow(dead_code)]
pub fn poll<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let until = Instant::now() + START_TIMEOUT;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(last) if Instant::now() > until => {
                panic!("{what}: not within {START_TIMEOUT:?}: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Waits until the run at `ctl` is past cycle 5 with every app running; its status.
#[allow(dead_code)]
pub fn wait_running(ctl: &Path) -> serde_json::Value {
    poll("every app running", || {
        let out = cli(&["status", "--json", "--control", s(ctl)], CLI_TIMEOUT);
        if !out.status.success() {
            return Err(text(&out.stderr));
        }
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
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

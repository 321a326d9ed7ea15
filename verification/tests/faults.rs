//! Fault injection against the shipped binaries (`target/release/takt` and the ACC app
//! executables), as an integrator's car would meet the faults: `kill -9` of the supervisor,
//! of apps, of standbys and of dismissed processes at random points of a hot swap; idle and
//! malicious clients on the control socket; hostile files for every reader; a full and a
//! read-only state disk.
//!
//! After each case the invariants are checked (see `takt_verification::harness`):
//! - the supervisor answered `takt status` throughout (every request answered; answers
//!   slower than a second are counted and printed, never asserted: these VMs stall);
//! - no process of the run is left;
//! - no shared memory is left in `/dev/shm`;
//! - old or new version of every app, never a mix;
//! - every planned release is accounted for in the traces: seen, or missed only by an app
//!   whose process was killed (one range per kill).
//!
//! Cases that need root (SCHED_FIFO, mounts) print `SKIPPED <name>: why` and return.
//! The random points come from a seed printed by each case (`TAKT_FAULT_SEED` repeats one).
#![deny(unsafe_code)]

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use takt_verification::harness::{
    self, app, kill_9, no_orphans, no_stale_shm, one_version_per_app, releases_accounted, s,
    status, takt, takt_ok, task_apps, text, wait_running, Running, StatusProbe, World,
};

/// SCHED_FIFO priority the real-time probe asks for (the runs' own dispatchers use theirs).
const RT_PRIORITY: u8 = 80;

macro_rules! needs_realtime {
    ($name:literal) => {
        if !harness::is_root() {
            eprintln!(concat!("SKIPPED ", $name, ": needs root for SCHED_FIFO"));
            return;
        }
        if let Err(why) = takt::dispatch::probe_realtime(RT_PRIORITY) {
            eprintln!(concat!("SKIPPED ", $name, ": {}"), why);
            return;
        }
    };
}

/// The seed of a case's random points: `TAKT_FAULT_SEED`, else the clock.
fn seed(case: &str) -> u64 {
    let seed = std::env::var("TAKT_FAULT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("{case}: seed {seed} (repeat with TAKT_FAULT_SEED={seed})");
    seed
}

/// xorshift64*: enough to spread kill points, repeatable from the seed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

fn must<T>(r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// The status probe's verdict: every request answered; slow answers are printed.
fn check_probe(case: &str, probe: StatusProbe) {
    let r = probe.finish();
    println!(
        "{case}: status answered {} times, max {:?}, {} slower than {:?}",
        r.answered,
        r.max_latency,
        r.slow,
        harness::STATUS_PROMISE
    );
    assert!(
        r.unanswered.is_empty(),
        "{case}: status went unanswered {} time(s): {:?}",
        r.unanswered.len(),
        r.unanswered.iter().take(3).collect::<Vec<_>>()
    );
    assert!(r.answered > 0, "{case}: the probe never asked");
}

/// Ends run `run` with `takt stop` and returns its output (which must be a clean end).
fn stop(world: &World, run: Running) -> std::process::Output {
    must(takt_ok(&["stop", "--control", s(&world.ctl())]));
    let out = must(run.wait(Duration::from_secs(60)));
    assert!(
        out.status.success(),
        "the run after `takt stop`: {}\n{}",
        out.status,
        text(&out.stderr)
    );
    out
}

/// The invariants after a run of `world` tagged `tag` has ended.
fn after_run(
    world: &World,
    tag: &str,
    baseline: &std::collections::BTreeSet<String>,
    kills: &[(&str, u64)],
) {
    must(no_orphans(world, &[], Duration::from_secs(10)));
    must(no_stale_shm(baseline, Duration::from_secs(10)));
    let ota = must(world.ota_offline());
    must(one_version_per_app(&ota));
    let apps = must(task_apps(&world.manifest));
    let a = must(harness::accounting(&world.trace_files(tag)));
    println!(
        "{tag}: releases planned {}, seen {}, missed {}, duplicate {}",
        a.planned, a.seen, a.missed, a.duplicate
    );
    must(releases_accounted(&a, &apps, kills));
}

fn pid_of(v: &Value, name: &str) -> u32 {
    app(v, name)
        .and_then(|a| a["pid"].as_u64())
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or_else(|| panic!("app {name} has no pid: {v}"))
}

/// The process of the run that is neither the supervisor nor a known app process: the
/// standby a hot swap starts.
fn standby(world: &World, known: &[u32]) -> Option<u32> {
    harness::processes_with(world.dir.path())
        .into_iter()
        .find(|p| !known.contains(p))
}

#[test]
fn kill_9_of_the_supervisor_at_random_points_of_a_hot_swap_leaves_old_or_new_never_a_mix() {
    needs_realtime!(
        "kill_9_of_the_supervisor_at_random_points_of_a_hot_swap_leaves_old_or_new_never_a_mix"
    );
    let _serial = takt_verification::serial();
    let case = "supervisor-kill";
    let mut rng = Rng(seed(case) | 1);
    let baseline = harness::shm_entries();
    let world = must(World::acc(case));
    let exe = must(harness::executable("acc-planning-v2"));
    for attempt in 0..3u64 {
        let version = attempt + 2;
        let bundle = must(world.sign("planning", version, &exe));
        let tag = format!("killed{attempt}");
        let mut run = must(world.start(&tag, "60s"));
        let v = must(wait_running(&world.ctl()));
        let mut pids = vec![run.pid()];
        pids.extend(["sensing", "planning", "vehicle"].map(|n| pid_of(&v, n)));
        let probe = StatusProbe::start(&world.ctl());
        must(takt_ok(&[
            "ota",
            "stage",
            s(&bundle),
            "--control",
            s(&world.ctl()),
        ]));
        let activate = must(Running::spawn(
            std::process::Command::new(must(harness::executable("takt"))).args([
                "ota",
                "activate",
                "planning",
                "--hot-swap",
                "--control",
                s(&world.ctl()),
            ]),
        ));
        // Somewhere in: standby start, switch at a boundary, probation (1 s), commit.
        pids.push(activate.pid());
        let delay = Duration::from_millis(rng.below(2_500));
        std::thread::sleep(delay);
        if let Some(p) = standby(&world, &pids) {
            pids.push(p);
        }
        // The activating CLI is not the run's: it may outlive the supervisor by its timeout.
        pids.retain(|&p| p != activate.pid());
        check_probe(case, probe);
        println!("{case}: attempt {attempt}: kill -9 of the supervisor {delay:?} into the activation of version {version}");
        run.kill_9();
        let _ = activate.wait(Duration::from_secs(30));
        must(no_orphans(&world, &pids, Duration::from_secs(10)));
        let ota = must(world.ota_offline());
        must(one_version_per_app(&ota));
        let planning = app(&ota, "planning").cloned().unwrap_or_default();
        println!("{case}: after the kill: planning {planning}");

        // The next start recovers: old or new, and a clean run.
        let tag = format!("recovered{attempt}");
        let run = must(world.start(&tag, "2s"));
        let out = must(run.wait(Duration::from_secs(60)));
        assert!(
            out.status.success(),
            "recovery run: {}\n{}",
            out.status,
            text(&out.stderr)
        );
        let ota = must(world.ota_offline());
        let installed = app(&ota, "planning").map(|a| a["installed_version"].clone());
        let installed = installed.and_then(|v| v.as_u64()).unwrap_or(u64::MAX);
        assert!(
            installed <= version,
            "planning installed {installed} after killing the activation of {version}: {ota}"
        );
        after_run(&world, &tag, &baseline, &[]);
    }
}

#[test]
fn kill_9_of_an_app_a_standby_and_a_dismissed_process_keeps_every_other_release() {
    needs_realtime!("kill_9_of_an_app_a_standby_and_a_dismissed_process_keeps_every_other_release");
    let _serial = takt_verification::serial();
    let case = "process-kills";
    let mut rng = Rng(seed(case) | 1);
    let baseline = harness::shm_entries();
    let world = must(World::acc(case));
    let exe = must(harness::executable("acc-planning-v2"));
    let run = must(world.start("run", "60s"));
    let ctl = world.ctl();
    let v = must(wait_running(&ctl));
    let probe = StatusProbe::start(&ctl);

    // 1. An app dies: it restarts at a boundary.
    let sensing = pid_of(&v, "sensing");
    must(kill_9(sensing));
    must(harness::poll(
        Duration::from_secs(15),
        "sensing restarted",
        || {
            let (v, _) = status(&ctl)?;
            let a = app(&v, "sensing").cloned().unwrap_or_default();
            (a["state"] == "running" && a["pid"].as_u64() != Some(u64::from(sensing)))
                .then_some(())
                .ok_or(format!("{a}"))
        },
    ));

    // 2. A standby dies before its switch: the activation fails cleanly, the old version runs on.
    let v = must(wait_running(&ctl));
    let known: Vec<u32> = std::iter::once(run.pid())
        .chain(["sensing", "planning", "vehicle"].map(|n| pid_of(&v, n)))
        .collect();
    let b2 = must(world.sign("planning", 2, &exe));
    must(takt_ok(&["ota", "stage", s(&b2), "--control", s(&ctl)]));
    let activate = must(Running::spawn(
        std::process::Command::new(must(harness::executable("takt"))).args([
            "ota",
            "activate",
            "planning",
            "--hot-swap",
            "--control",
            s(&ctl),
        ]),
    ));
    // The activating CLI names the control socket too; it is no process of the run.
    let mut known = known;
    known.push(activate.pid());
    let victim = must(harness::poll(
        Duration::from_secs(10),
        "a standby process",
        || standby(&world, &known).ok_or_else(|| "none yet".to_string()),
    ));
    std::thread::sleep(Duration::from_millis(rng.below(30)));
    println!("{case}: kill -9 of the standby {victim}");
    let _ = kill_9(victim);
    let out = must(activate.wait(Duration::from_secs(60)));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    println!(
        "{case}: activation with a killed standby: {} {said}",
        out.status
    );
    assert!(
        out.status.code().is_some(),
        "takt ota activate died by a signal: {said}"
    );
    assert!(!said.contains("panicked"), "{said}");
    // The kill may land after the switch was decided (the switch then stands and the new
    // version's process died: a restart, and a probation that judges it). Either way the
    // update must end on its own before the next one can be staged.
    must(harness::poll(
        Duration::from_secs(30),
        "the update of version 2 ended (withdrawn, committed or rolled back)",
        || {
            let out = takt_ok(&["ota", "status", "--json", "--control", s(&ctl)])?;
            let v: Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
            let a = app(&v, "planning").cloned().unwrap_or_default();
            (a["state"] != "activating" && a["state"] != "probation")
                .then_some(())
                .ok_or(format!("{a}"))
        },
    ));
    let v = must(wait_running(&ctl));
    assert!(
        app(&v, "planning")
            .and_then(|a| a["pid"].as_u64())
            .is_some(),
        "planning runs: {v}"
    );

    // 3. A dismissed process dies right after the commit of the next version.
    let old = pid_of(&v, "planning");
    let b3 = must(world.sign("planning", 3, &exe));
    must(takt_ok(&["ota", "stage", s(&b3), "--control", s(&ctl)]));
    must(takt_ok(&[
        "ota",
        "activate",
        "planning",
        "--hot-swap",
        "--control",
        s(&ctl),
    ]));
    must(harness::poll(
        Duration::from_secs(15),
        "version 3 committed",
        || {
            let out = takt_ok(&["ota", "status", "--json", "--control", s(&ctl)])?;
            let v: Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
            let a = app(&v, "planning").cloned().unwrap_or_default();
            (a["state"] == "committed" && a["running_version"] == 3)
                .then_some(())
                .ok_or(format!("{a}"))
        },
    ));
    if harness::alive(old) {
        println!("{case}: kill -9 of the dismissed process {old}");
        let _ = kill_9(old);
    }
    let v = must(wait_running(&ctl));
    assert_ne!(
        pid_of(&v, "planning"),
        old,
        "version 3 runs in a new process: {v}"
    );

    // 4. The next version is killed from outside while on probation: it is rolled back
    // (version 3 runs again) and, SIGKILL being nobody's own doing, not marked bad.
    let b4 = must(world.sign("planning", 4, &exe));
    must(takt_ok(&["ota", "stage", s(&b4), "--control", s(&ctl)]));
    let v3_pid = pid_of(&v, "planning");
    must(takt_ok(&[
        "ota",
        "activate",
        "planning",
        "--hot-swap",
        "--control",
        s(&ctl),
    ]));
    let candidate = must(harness::poll(
        Duration::from_secs(15),
        "version 4 on probation",
        || {
            let out = takt_ok(&["ota", "status", "--json", "--control", s(&ctl)])?;
            let o: Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
            let a = app(&o, "planning").cloned().unwrap_or_default();
            let (v, _) = status(&ctl)?;
            let pid = pid_of(&v, "planning");
            (a["state"] == "probation" && pid != v3_pid)
                .then_some(pid)
                .ok_or(format!("{a}"))
        },
    ));
    println!("{case}: kill -9 of version 4 on probation, pid {candidate}");
    must(kill_9(candidate));
    let rolled = must(harness::poll(
        Duration::from_secs(15),
        "version 4 rolled back",
        || {
            let out = takt_ok(&["ota", "status", "--json", "--control", s(&ctl)])?;
            let o: Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
            let a = app(&o, "planning").cloned().unwrap_or_default();
            (a["state"] == "rolled-back" && a["running_version"] == 3)
                .then_some(a.clone())
                .ok_or(format!("{a}"))
        },
    ));
    assert_eq!(
        rolled["bad_versions"],
        serde_json::json!([]),
        "a version killed from outside is not marked bad: {rolled}"
    );
    let v = must(wait_running(&ctl));
    assert_eq!(
        pid_of(&v, "planning"),
        v3_pid,
        "version 3's process, standing by, owns the app again: {v}"
    );

    check_probe(case, probe);
    stop(&world, run);
    after_run(&world, "run", &baseline, &[("sensing", 1), ("planning", 1)]);
}

/// A frame as the control protocol writes it, with any body.
fn frame(version: u16, body: &[u8]) -> Vec<u8> {
    let mut f = ((body.len() + 2) as u32).to_be_bytes().to_vec();
    f.extend_from_slice(&version.to_be_bytes());
    f.extend_from_slice(body);
    f
}

#[test]
fn idle_and_malicious_clients_never_lock_the_owner_out_nor_forge_an_app() {
    needs_realtime!("idle_and_malicious_clients_never_lock_the_owner_out_nor_forge_an_app");
    let _serial = takt_verification::serial();
    let case = "clients";
    let baseline = harness::shm_entries();
    let world = must(World::acc(case));
    let run = must(world.start("run", "60s"));
    let ctl = world.ctl();
    let v = must(wait_running(&ctl));
    let probe = StatusProbe::start(&ctl);

    // More idle connections than there can be apps, held open.
    let mut idle = Vec::new();
    for _ in 0..100 {
        match UnixStream::connect(&ctl) {
            Ok(c) => idle.push(c),
            Err(e) => println!("{case}: connection {} refused: {e}", idle.len()),
        }
    }
    println!("{case}: {} idle connections open", idle.len());
    // Garbage, a length beyond any frame, a wrong version, half a frame.
    let mut hostile: Vec<Vec<u8>> = vec![
        (0..64u8).map(|b| b.wrapping_mul(37)).collect(),
        vec![0xff, 0xff, 0xff, 0xff, 0, 2],
        frame(0xbeef, b"\x01\x02\x03"),
        frame(takt::lifecycle::wire::PROTOCOL_VERSION, &[7u8; 100])[..50].to_vec(),
    ];
    // Requests that speak for an app this client is not.
    let forged = [
        takt::lifecycle::wire::Request::AppReady {
            app: "planning".into(),
            pid: pid_of(&v, "planning"),
            version: "forged".into(),
        },
        takt::lifecycle::wire::Request::AppFinished {
            app: "planning".into(),
            result: Err("forged by a client".into()),
        },
    ];
    for req in &forged {
        hostile.push(must(
            takt::lifecycle::wire::encode(req).map_err(|e| e.to_string()),
        ));
    }
    let mut held = Vec::new();
    for bytes in &hostile {
        if let Ok(mut c) = UnixStream::connect(&ctl) {
            let _ = c.set_write_timeout(Some(Duration::from_secs(2)));
            let _ = c.write_all(bytes);
            held.push(c);
        }
    }
    // The owner still gets answers and can still switch modes.
    let started = Instant::now();
    must(takt_ok(&["mode", "set", "degraded", "--control", s(&ctl)]));
    must(takt_ok(&["mode", "set", "drive", "--control", s(&ctl)]));
    println!(
        "{case}: two mode switches with the socket crowded took {:?}",
        started.elapsed()
    );
    // A switch takes effect at a hyperperiod boundary after the request.
    must(harness::poll(
        Duration::from_secs(10),
        "mode drive in effect",
        || {
            let (v, _) = status(&ctl)?;
            (v["mode"] == "drive" && v["requested_mode"].is_null())
                .then_some(())
                .ok_or(format!("{v}"))
        },
    ));
    check_probe(case, probe);
    let out = stop(&world, run);
    drop(idle);
    drop(held);
    // The forged end-of-run report did not replace planning's own.
    let summary = text(&out.stdout);
    assert!(
        !summary.contains("forged by a client"),
        "a client spoke for app planning:\n{summary}"
    );
    after_run(&world, "run", &baseline, &[]);
}

/// Hostile stand-ins for a file: random bytes, a FIFO (no writer ever comes), a directory,
/// a 9 MiB file, a `/proc` file whose size lies, a symlink loop, a missing path.
fn hostile_paths(dir: &Path) -> Vec<(String, std::path::PathBuf)> {
    let mut v = Vec::new();
    let garbage = dir.join("garbage");
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&garbage, bytes).expect("write garbage");
    v.push(("random bytes".to_string(), garbage));
    let fifo = dir.join("fifo");
    let made = fifo.exists() || {
        let st = std::process::Command::new("mkfifo").arg(&fifo).status();
        st.is_ok_and(|st| st.success())
    };
    if made {
        v.push(("a FIFO".to_string(), fifo));
    }
    let d = dir.join("a-directory");
    std::fs::create_dir_all(&d).expect("mkdir");
    v.push(("a directory".to_string(), d));
    let big = dir.join("big");
    std::fs::write(&big, vec![b'a'; 9 << 20]).expect("write big");
    v.push(("9 MiB of `a`".to_string(), big));
    v.push(("/proc/self/mounts".to_string(), "/proc/self/mounts".into()));
    let looped = dir.join("loop");
    let _ = std::os::unix::fs::symlink(&looped, &looped);
    v.push(("a symlink loop".to_string(), looped));
    v.push(("a missing path".to_string(), dir.join("missing")));
    v
}

/// A reader of files: its name, and the `takt` arguments that make it read a path.
type Reader = (&'static str, Box<dyn Fn(&str) -> Vec<String>>);

#[test]
fn hostile_files_for_every_reader_get_a_clear_error_never_a_panic_or_a_hang() {
    let case = "hostile-files";
    let world = must(World::acc(case));
    let dir = world.path("hostile");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let good_state = world.state();
    let readers: Vec<Reader> = vec![
        (
            "manifest",
            Box::new(|p: &str| vec!["check".into(), p.into()]),
        ),
        (
            "manifest (plan)",
            Box::new(|p: &str| vec!["plan".into(), p.into()]),
        ),
        (
            "bundle",
            Box::new(|p: &str| vec!["ota".into(), "inspect".into(), p.into()]),
        ),
        (
            "trace",
            Box::new(|p: &str| vec!["trace".into(), "report".into(), p.into()]),
        ),
        (
            "signing key",
            Box::new(|p: &str| {
                vec![
                    "ota".into(),
                    "sign".into(),
                    "--key".into(),
                    p.into(),
                    "--app".into(),
                    "planning".into(),
                    "--version".into(),
                    "2".into(),
                    "--executable".into(),
                    "/bin/true".into(),
                    "--manifest".into(),
                    "/nonexistent.toml".into(),
                    "--out".into(),
                    "/tmp/never-written.takt".into(),
                ]
            }),
        ),
        (
            "state directory",
            Box::new(|p: &str| {
                vec![
                    "ota".into(),
                    "status".into(),
                    "--manifest".into(),
                    "MANIFEST".into(),
                    "--ota-dir".into(),
                    p.into(),
                ]
            }),
        ),
    ];
    let manifest = world.manifest.display().to_string();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (what, path) in hostile_paths(&dir) {
        for (reader, args) in &readers {
            let args: Vec<String> = args(s(&path))
                .into_iter()
                .map(|a| if a == "MANIFEST" { manifest.clone() } else { a })
                .collect();
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = match takt(&argv, Duration::from_secs(20)) {
                Ok(o) => o,
                Err(e) => {
                    failures.push(format!("{reader} given {what}: {e}"));
                    continue;
                }
            };
            checked += 1;
            let err = text(&out.stderr);
            let code = out.status.code();
            // State directories that are not one are fine to report as empty; everything
            // else must be refused.
            let refused = matches!(code, Some(c) if c != 0 && c != 101);
            let acceptable = refused || (*reader == "state directory" && code == Some(0));
            if !acceptable || err.contains("panicked") {
                failures.push(format!("{reader} given {what}: exit {code:?}: {err}"));
            } else if refused && err.trim().is_empty() {
                failures.push(format!("{reader} given {what}: refused without a word"));
            }
        }
    }
    // The app executables' own reader of the host plan file the supervisor hands them.
    let sensing = must(harness::executable("acc-sensing"));
    for (what, path) in hostile_paths(&dir) {
        let out = must(
            Running::spawn(std::process::Command::new(&sensing).args([
                "--takt-host",
                s(&path),
                "--app",
                "sensing",
            ]))
            .and_then(|r| r.wait(Duration::from_secs(20))),
        );
        checked += 1;
        let err = text(&out.stderr);
        if out.status.success() || out.status.code().is_none() || err.contains("panicked") {
            failures.push(format!(
                "acc-sensing --takt-host {what}: {} {err}",
                out.status
            ));
        }
    }
    let _ = good_state;
    println!("{case}: {checked} reader/file pairs checked");
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A tmpfs of `size` mounted at `at`, unmounted when dropped.
struct Mount(std::path::PathBuf);
impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Result<Mount, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", s(at)])
            .status()
            .map_err(|e| format!("mount: {e}"))?;
        if st.success() {
            Ok(Mount(at.to_path_buf()))
        } else {
            Err(format!("mount -t tmpfs at {}: {st}", at.display()))
        }
    }
    fn remount(&self, opts: &str) -> Result<(), String> {
        let st = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{opts}"), s(&self.0)])
            .status()
            .map_err(|e| format!("mount: {e}"))?;
        st.success()
            .then_some(())
            .ok_or(format!("remount {opts}: {st}"))
    }
}
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_state_disk_refuses_staging_and_a_read_only_one_runs_with_updates_off() {
    needs_realtime!("a_full_state_disk_refuses_staging_and_a_read_only_one_runs_with_updates_off");
    let _serial = takt_verification::serial();
    let case = "state-disk";
    let baseline = harness::shm_entries();
    let world = must(World::acc(case));
    let state = world.state();
    let disk = match Mount::tmpfs(&state, "2m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("SKIPPED a_full_state_disk_refuses_staging_and_a_read_only_one_runs_with_updates_off: {why}");
            return;
        }
    };
    let exe = must(harness::executable("acc-planning-v2"));
    let b2 = must(world.sign("planning", 2, &exe));
    let run = must(world.start("run", "60s"));
    let ctl = world.ctl();
    must(wait_running(&ctl));
    let probe = StatusProbe::start(&ctl);

    // Full: the bundle's executable does not fit in what is left.
    let filler = state.join("filler");
    let mut f = std::fs::File::create(&filler).expect("filler");
    let chunk = vec![0u8; 64 << 10];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    drop(f);
    let before = listing(&state);
    let out = must(takt(
        &["ota", "stage", s(&b2), "--control", s(&ctl)],
        Duration::from_secs(60),
    ));
    let said = text(&out.stderr);
    println!("{case}: stage on a full disk: {} {said}", out.status);
    assert!(
        !out.status.success() && !said.trim().is_empty() && !said.contains("panicked"),
        "{said}"
    );
    let _ = std::fs::remove_file(&filler);

    must(wait_running(&ctl));
    check_probe(case, probe);
    let out = stop(&world, run);
    assert!(
        text(&out.stdout).contains("digest:"),
        "{}",
        text(&out.stdout)
    );
    // Nothing half-written is taken for a slot.
    let ota = must(world.ota_offline());
    let planning = app(&ota, "planning").cloned().unwrap_or_default();
    assert_eq!(planning["installed_version"], 0, "{ota}");
    let after = listing(&state);
    println!("{case}: state before the refused stage {before:?}, after {after:?}");
    after_run(&world, "run", &baseline, &[]);

    // Read-only (a disk that errors remounts itself read-only; a run holds the state
    // directory's lock open, so the remount is made between runs). takt runs the
    // installed, verified versions with updates off, says so on stderr naming the
    // directory and the cause, and writes nothing.
    must(disk.remount("ro"));
    let out = must(must(world.start("ro", "5s")).wait(Duration::from_secs(60)));
    let said = text(&out.stderr);
    println!(
        "{case}: a run on a read-only state disk: {} {said}",
        out.status
    );
    assert!(
        out.status.success()
            && said.contains("UPDATES DISABLED")
            && said.contains(s(&state))
            && said.contains("Read-only file system")
            && !said.contains("panicked")
            && text(&out.stdout).contains("digest:"),
        "{said}"
    );
    must(no_orphans(&world, &[], Duration::from_secs(10)));
    must(no_stale_shm(&baseline, Duration::from_secs(10)));
    must(disk.remount("rw"));
    drop(disk);
}

/// The names of the files under `dir` (one level), sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

//! The `takt` binary as an integrator uses it: exit codes, error locations, the run summary,
//! and what a running deployment looks like from the outside (SCHED_FIFO, pinning).
#![deny(unsafe_code)]

mod common;
use common::{absolute_executables, inconclusive, run_verdict, RunVerdict};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn takt() -> Command {
    Command::new(env!("CARGO_BIN_EXE_takt"))
}

fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

fn run_ok(args: &[&str]) -> Output {
    let out = takt().args(args).output().expect("takt runs");
    assert!(
        out.status.success(),
        "takt {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

fn tmp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("takt-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write temp manifest");
    p
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn digest_of(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("").to_string();
    assert!(
        last.starts_with("digest: "),
        "last line is the digest, got {last:?}"
    );
    let hex = last["digest: ".len()..].to_string();
    assert_eq!(hex.len(), 64, "a SHA-256 in hex");
    assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
    hex
}

#[test]
fn check_accepts_the_demo_manifest() {
    let out = run_ok(&["check", repo("config/acc.toml").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn a_syntax_error_names_its_line_and_exits_2() {
    let good = std::fs::read_to_string(repo("config/acc.toml")).unwrap();
    let mut lines: Vec<&str> = good.lines().collect();
    let n = lines.len() / 2;
    lines.insert(n, "this is = = not toml");
    let p = tmp("syntax.toml", &lines.join("\n"));
    let out = takt()
        .args(["check", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(":{}", n + 1)),
        "error names line {}: {err}",
        n + 1
    );
    assert!(!err.contains("panicked"));
}

/// `manifest` (a shipped one) with the line `old` replaced by `new`, checked: `takt check`
/// must exit 2 naming the line and column of the new value, `field` and `reason`.
fn check_refuses_param(manifest: &str, old: &str, new: &str, field: &str, reason: &str) {
    let good = absolute_executables(&std::fs::read_to_string(repo(manifest)).unwrap());
    let line = 1 + good
        .lines()
        .position(|l| l == old)
        .unwrap_or_else(|| panic!("{manifest} has the line {old:?}"));
    let col = 1 + new.find(" = ").expect("a `key = value` line") + " = ".len();
    let name = format!("param-{}", manifest.replace(['/', '.'], "-"));
    let p = tmp(&name, &good.replacen(old, new, 1));
    let out = takt()
        .args(["check", p.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{manifest} with {new:?}: {err}");
    let at = format!("{}:{line}:{col}: {field}: ", p.display());
    assert!(err.contains(&at), "{new:?}: error at {at:?}, got: {err}");
    assert!(
        err.contains(reason),
        "{new:?}: reason {reason:?}, got: {err}"
    );
}

#[test]
fn a_demo_parameter_of_the_wrong_type_out_of_range_or_unknown_is_refused_with_its_place() {
    let field = "task.lane_fusion.params.camera_timeout_ms";
    check_refuses_param(
        "config/lanekeep.toml",
        "camera_timeout_ms = 50",
        "camera_timeout_ms = \"fifty\"",
        field,
        "parameter `camera_timeout_ms` is declared as a float, found a string",
    );
    check_refuses_param(
        "config/lanekeep.toml",
        "camera_timeout_ms = 50",
        "camera_timeout_ms = 50000",
        field,
        "parameter `camera_timeout_ms` = 50000 is outside the allowed range 1..=10000",
    );
    check_refuses_param(
        "config/lanekeep.toml",
        "kp = 2.0",
        "kp_gain = 2.0",
        "task.steer_controller.params.kp_gain",
        "task implementation `steer_controller` declares no parameter `kp_gain`",
    );
    let field = "task.perception.params.camera_timeout_ms";
    check_refuses_param(
        "config/acc.toml",
        "camera_timeout_ms = 100",
        "camera_timeout_ms = \"slow\"",
        field,
        "parameter `camera_timeout_ms` is declared as a float, found a string",
    );
    check_refuses_param(
        "config/acc.toml",
        "kp = 0.5",
        "kp = 11.5",
        "task.controller.params.kp",
        "parameter `kp` = 11.5 is outside the allowed range 0..=10",
    );
    check_refuses_param(
        "config/acc.toml",
        "kp = 0.5",
        "kpp = 0.5",
        "task.controller.params.kpp",
        "task implementation `controller` declares no parameter `kpp`",
    );
}

#[test]
fn empty_truncated_and_missing_files_exit_2_with_one_line() {
    let good = std::fs::read_to_string(repo("config/acc.toml")).unwrap();
    let cut = &good[..good.len() / 3];
    let cut = &cut[..cut.rfind('=').unwrap_or(cut.len())];
    let cases = [
        tmp("empty.toml", ""),
        tmp("truncated.toml", cut),
        PathBuf::from("/nonexistent/takt/missing.toml"),
    ];
    for p in &cases {
        let out = takt()
            .args(["check", p.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", p.display());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            !err.trim().is_empty(),
            "a reason is printed for {}",
            p.display()
        );
        if p.ends_with("empty.toml") || p.ends_with("missing.toml") {
            assert_eq!(err.trim().lines().count(), 1, "one-line reason: {err}");
        }
    }
}

#[test]
fn an_executable_that_never_answers_the_catalog_handshake_is_named_and_killed() {
    // It writes its pid where the test can find it, then sleeps far past the handshake's
    // time limit (10 s).
    let pid_file = tmp("hung.pid", "");
    let exe = tmp(
        "hung-app.sh",
        &format!(
            "#!/bin/sh\necho $$ > {}\nexec sleep 120\n",
            pid_file.display()
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let good = std::fs::read_to_string(repo("config/acc.toml")).unwrap();
    let manifest = tmp(
        "hung.toml",
        &absolute_executables(&good.replace(
            "\"../target/release/acc-planning\"",
            &format!("\"{}\"", exe.display()),
        )),
    );
    assert!(
        std::fs::read_to_string(&manifest)
            .unwrap()
            .contains("hung-app.sh"),
        "the planning app is replaced by the hung one"
    );
    let started = Instant::now();
    let mut child = takt()
        .args(["check", manifest.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("takt runs");
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("takt check did not give up on a hung executable within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hung-app.sh did not answer --takt-catalog within 10s"),
        "{err}"
    );
    assert!(err.contains("app `planning`"), "the app is named: {err}");
    // The hung process is gone, not left sleeping.
    let pid = std::fs::read_to_string(&pid_file).expect("the script ran");
    let pid = pid.trim();
    assert!(!pid.is_empty(), "the script wrote its pid");
    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false);
    assert!(!alive, "process {pid} of the hung executable was killed");
}

#[test]
fn plan_prints_tables_utilization_and_bounds() {
    let out = run_ok(&["plan", repo("config/acc.toml").to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    for word in ["hyperperiod", "core 0", "core 1", "utilization", "verified"] {
        assert!(text.contains(word), "plan output mentions {word}:\n{text}");
    }
}

/// `config/acc.toml` with the `radar_to_brake` chain's `max_data_age` set to `value`, in a
/// temp file named `name`.
fn acc_requiring_data_age(name: &str, value: &str) -> PathBuf {
    let good = absolute_executables(&std::fs::read_to_string(repo("config/acc.toml")).unwrap());
    let line = "max_data_age = \"40ms\"";
    assert_eq!(
        good.matches(line).count(),
        1,
        "radar_to_brake states {line}"
    );
    let radar = good.find("name = \"radar_to_brake\"").unwrap();
    assert!(
        good.find(line).unwrap() > radar,
        "{line} is radar_to_brake's"
    );
    tmp(
        name,
        &good.replacen(line, &format!("max_data_age = \"{value}\""), 1),
    )
}

#[test]
fn a_missed_chain_requirement_is_refused_with_exit_2_naming_chain_bound_and_hop() {
    // The demo's exact data age bound of radar_to_brake is 35 ms.
    let p = acc_requiring_data_age("strict.toml", "20ms");
    let out = takt().args(["plan", p.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{err}\n{stdout}");
    for phrase in [
        "chain radar_to_brake",
        "data age bound 35ms",
        "max_data_age 20ms",
        "by 15ms",
        "the largest contribution is the hop planner -> controller (15ms",
    ] {
        assert!(err.contains(phrase), "stderr names {phrase:?}: {err}");
    }
    assert!(
        !err.contains("camera_to_brake"),
        "only the missed one: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // The plan is still shown, with the missed requirement next to its bound.
    assert!(
        stdout.contains("data age bound 35ms (requirement 20ms: exceeded by 15ms)"),
        "{stdout}"
    );

    // Every verb that plans refuses it before starting anything.
    for args in [
        vec!["check", p.to_str().unwrap()],
        vec![
            "run",
            p.to_str().unwrap(),
            "--clock",
            "sim",
            "--duration",
            "100ms",
            "--quiet",
        ],
    ] {
        let out = takt().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "takt {args:?}: {err}");
        assert!(
            err.contains("chain radar_to_brake: exact LET data age bound 35ms exceeds max_data_age 20ms by 15ms"),
            "takt {args:?}: {err}"
        );
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("digest:"),
            "takt {args:?} ran nothing"
        );
    }
}

#[test]
fn met_chain_requirements_print_as_met_and_exit_0() {
    let p = acc_requiring_data_age("generous.toml", "100ms");
    let out = run_ok(&["plan", p.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("    data age bound 35ms (requirement 100ms: met)"),
        "{stdout}"
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The demo's own requirements hold with margin.
    let out = run_ok(&["plan", repo("config/acc.toml").to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        "    data age bound 35ms (requirement 40ms: met)",
        "    reaction time bound 45ms (requirement 60ms: met)",
        "    data age bound 64ms (requirement 80ms: met)",
        "    reaction time bound 74ms (requirement 100ms: met)",
    ] {
        assert!(stdout.contains(line), "{line:?} in:\n{stdout}");
    }
}

#[test]
fn sim_run_prints_summary_and_digest() {
    let out = run_ok(&[
        "run",
        repo("config/acc.toml").to_str().unwrap(),
        "--clock",
        "sim",
        "--duration",
        "1s",
        "--quiet",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("outcome:"), "{stdout}");
    digest_of(&out);
}

#[test]
fn bad_duration_is_refused_with_exit_2() {
    let out = takt()
        .args([
            "run",
            repo("config/acc.toml").to_str().unwrap(),
            "--duration",
            "ten seconds",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--duration"));
}

/// Reads (class, cpus-allowed) of every thread of `pid` whose name starts with `takt-core`.
fn dispatcher_threads(run_pid: u32) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    // The `takt run` process and its children: by default `takt run` supervises one process
    // per app, and the dispatchers live in those.
    let mut pids = vec![run_pid];
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{run_pid}/task")) {
        for t in tasks.flatten() {
            let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            pids.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    for pid in pids {
        found.extend(dispatcher_threads_of(pid));
    }
    found
}

/// (thread name, scheduling class, allowed CPUs) of the `takt-core*` threads of `pid`.
fn dispatcher_threads_of(pid: u32) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return found;
    };
    for t in tasks.flatten() {
        let dir = t.path();
        let comm = std::fs::read_to_string(dir.join("comm"))
            .unwrap_or_default()
            .trim()
            .to_string();
        if !comm.starts_with("takt-core") {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        let cpus = status
            .lines()
            .find(|l| l.starts_with("Cpus_allowed_list:"))
            .map(|l| l["Cpus_allowed_list:".len()..].trim().to_string())
            .unwrap_or_default();
        let tid = t.file_name().to_string_lossy().to_string();
        let cls = Command::new("ps")
            .args(["-o", "cls=", "-L", "-p", &pid.to_string(), "-o", "tid="])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .find(|l| l.split_whitespace().nth(1) == Some(tid.as_str()))
                    .and_then(|l| l.split_whitespace().next().map(str::to_string))
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        found.push((comm, cls, cpus));
    }
    found
}

#[test]
fn real_run_pins_dispatchers_under_fifo_and_matches_sim() {
    if !is_root() {
        eprintln!("SKIPPED real_run_pins_dispatchers_under_fifo_and_matches_sim: needs root for SCHED_FIFO");
        return;
    }
    let name = "real_run_pins_dispatchers_under_fifo_and_matches_sim";
    let manifest = repo("config/acc.toml");
    // This shared VM sometimes stalls even SCHED_FIFO threads for tens of milliseconds. The
    // run's summary attributes every miss: one that is takt's fails the test at once; a run
    // whose misses are all the platform's proves nothing about determinism, so it is run
    // again (at most three attempts, each printed) and, if the last is spoilt too, the test
    // is INCONCLUSIVE, never passed.
    let mut attempt = 0;
    let (seen, out) = loop {
        attempt += 1;
        let child = takt()
            .args([
                "run",
                manifest.to_str().unwrap(),
                "--duration",
                "3s",
                "--quiet",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut seen = Vec::new();
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(200));
            seen = dispatcher_threads(pid);
            // A dispatcher thread is named when it is spawned and turns SCHED_FIFO once it
            // has pinned itself, so a sample taken during start-up can catch it before.
            if seen.len() >= 2 && seen.iter().all(|(_, cls, _)| cls == "FF") {
                break;
            }
        }
        let out = child.wait_with_output().unwrap();
        match run_verdict(&String::from_utf8_lossy(&out.stdout)) {
            RunVerdict::PlatformOnly(_, line) if attempt < 3 => eprintln!(
                "RETRY {name}: attempt {attempt} of 3: every miss was the platform's: {line}"
            ),
            _ => break (seen, out),
        }
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        seen.len() >= 2,
        "two dispatcher threads seen while running: {seen:?}"
    );
    for (name, cls, cpus) in &seen {
        assert_eq!(cls, "FF", "{name} runs SCHED_FIFO");
        assert!(
            cpus.parse::<usize>().is_ok(),
            "{name} is pinned to a single CPU, got {cpus:?}"
        );
    }
    match run_verdict(&String::from_utf8_lossy(&out.stdout)) {
        RunVerdict::Kept => {}
        RunVerdict::PlatformOnly(n, line) => {
            inconclusive(name, &format!("{n} platform misses ({line})"));
            return;
        }
        RunVerdict::Takt(line) => panic!(
            "{name}: takt missed its schedule: {line}\n{}",
            String::from_utf8_lossy(&out.stdout)
        ),
    }
    let real = digest_of(&out);
    let sim = digest_of(&run_ok(&[
        "run",
        manifest.to_str().unwrap(),
        "--clock",
        "sim",
        "--duration",
        "3s",
        "--quiet",
    ]));
    assert_eq!(real, sim, "real-time and simulated-time digests agree");
}

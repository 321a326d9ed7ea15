//! `takt bench --quick` end to end: it finishes, writes a JSON report with every key the
//! benchmark promises, each a number or `null` explained by a `SKIPPED <part>` line, and
//! reports the machine. Nothing about time is asserted: the figures are the bench's
//! business, not a test's. A hang is caught by a generous timeout that kills the child.
#![deny(unsafe_code)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Far above what `--quick` needs (well under a minute), for a slow, shared CI machine.
const TIMEOUT: Duration = Duration::from_secs(300);

/// Every headline key, with the part whose SKIPPED line must explain a `null`.
const KEYS: &[(&str, &str)] = &[
    ("port_ratio_p50_8b", "ports"),
    ("port_ratio_p50_4mib", "ports"),
    ("port_ratio_p99_8b", "ports"),
    ("port_ratio_p99_4mib", "ports"),
    ("port_4mib_over_8b_p50", "ports"),
    ("jitter_ratio_p99", "jitter"),
    ("jitter_ratio_max", "jitter"),
    ("dispatch_overhead_ns_p99", "dispatch"),
    ("allocations_per_job", "dispatch"),
    ("plan_ms_1000_tasks", "scale"),
    ("dispatch_cost_ratio_1000_over_10", "scale"),
    ("sim_speedup", "sim"),
    ("sim_speedup_with_setup", "sim"),
    ("spin_lateness_ratio_p50", "jitter"),
    ("spin_lateness_ratio_p99", "jitter"),
    ("spin_cpu_fraction", "jitter"),
    ("ota_delta_bytes", "ota"),
    ("ota_full_bytes", "ota"),
    ("ota_delta_ratio", "ota"),
    // Raw figures behind the ratios.
    ("port_takt_8b_ns_p50", "ports"),
    ("port_raw_8b_ns_p50", "ports"),
    ("port_takt_4mib_ns_p99", "ports"),
    ("port_raw_4mib_ns_p99", "ports"),
    ("jitter_takt_ns_p99", "jitter"),
    ("jitter_cyclictest_us_p99", "jitter"),
    ("dispatch_cost_ns_per_job_10_tasks", "scale"),
    ("dispatch_cost_ns_per_job_1000_tasks", "scale"),
];

/// Runs the binary with `args`, killing it after [`TIMEOUT`]. Returns (success, stdout, stderr).
fn run_with_timeout(args: &[&str]) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_takt"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the takt binary starts");
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for takt bench") {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("takt {args:?} did not finish within {TIMEOUT:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    (status.success(), stdout, stderr)
}

#[test]
fn quick_bench_reports_every_key_as_a_number_or_an_explained_null() {
    let dir = std::env::temp_dir().join(format!("takt-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json_path: PathBuf = dir.join("bench.json");
    let (ok, stdout, stderr) = run_with_timeout(&[
        "bench",
        "--quick",
        "--json",
        json_path.to_str().expect("utf-8 path"),
    ]);
    assert!(
        ok,
        "takt bench --quick failed:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let text = std::fs::read_to_string(&json_path).expect("the JSON report was written");
    let json: Value = serde_json::from_str(&text).expect("the report is JSON");
    let skipped = |part: &str| {
        stdout
            .lines()
            .any(|l| l.starts_with(&format!("SKIPPED {part}")))
    };
    for (key, part) in KEYS {
        match json.get(*key) {
            Some(Value::Number(n)) => {
                let v = n.as_f64().expect("a finite number");
                assert!(v.is_finite() && v >= 0.0, "{key} = {v}");
            }
            Some(Value::Null) => assert!(
                skipped(part),
                "{key} is null but no `SKIPPED {part}` line says why:\n{stdout}"
            ),
            other => panic!("{key}: expected a number or null, found {other:?}\n{text}"),
        }
    }
    assert_eq!(json["quick"], Value::Bool(true));
    let machine = &json["machine"];
    assert!(
        machine["cores"].as_u64().is_some_and(|c| c >= 1),
        "{machine}"
    );
    assert!(machine["kernel"].is_string(), "{machine}");
    assert!(machine["realtime"].is_boolean(), "{machine}");
    // Whatever the machine allows, the table is printed and names every part.
    for part in ["ports", "jitter", "dispatch", "scale", "sim", "ota"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(part) || l.starts_with(&format!("SKIPPED {part}"))),
            "the output mentions part {part}:\n{stdout}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_json_path_is_an_error_not_a_panic() {
    let (ok, _stdout, stderr) = run_with_timeout(&[
        "bench",
        "--quick",
        "--json",
        "/nonexistent-dir/takt/bench.json",
        "--cyclictest",
        "/nonexistent/cyclictest",
    ]);
    assert!(!ok, "writing to a missing directory must fail");
    assert!(
        stderr.contains("/nonexistent-dir/takt/bench.json"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

//! `takt trace report | export | plot` and `takt plan --svg` end to end, through the binary.
//!
//! The main fixture is a synthetic run written with `takt::trace::TraceWriter` (`fixture`,
//! shared with takt-trace's own tests): two processes (one trace file each) of a two-task
//! chain whose every time and sequence number is chosen by hand, so the expected figures
//! are computed by hand and asserted exactly. A real `takt run --clock sim --trace` of the ACC demo checks the same tools on
//! what the dispatcher really writes, and damaged copies of the fixture check that a broken
//! file gives a partial report or a clear error, never a panic. Every child is killed after
//! a generous timeout so a hang fails the test instead of blocking it; nothing about time is
//! asserted.
#![deny(unsafe_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use takt::trace::ModeTasks;
use takt::trace::{ClockKind, TaskInfo, TraceHeader, TraceRecord};

// The synthetic two-process run, shared with takt-trace's tests of the same figures.
#[path = "../trace/tests/fixture/mod.rs"]
mod fixture;
use fixture::{
    header, sensor_jobs, write_trace, EPOCH_NS, FILTER_EXEC_NS, FILTER_LATE_NS, MS, SENSOR_EXEC_NS,
    SENSOR_JOBS, SENSOR_LATE_NS,
};
use takt::time::{LogicalNs, MonoNs};

const TIMEOUT: Duration = Duration::from_secs(300);

/// What a finished child left behind.
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// Runs the binary with `args`, killing it after [`TIMEOUT`].
fn takt(args: &[&str]) -> Outcome {
    let mut child = Command::new(env!("CARGO_BIN_EXE_takt"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start takt");
    let mut out_pipe = child.stdout.take().expect("stdout is piped");
    let mut err_pipe = child.stderr.take().expect("stderr is piped");
    // Drain both pipes while waiting, so a chatty child never blocks on a full pipe.
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for takt") {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("takt {args:?} did not finish within {TIMEOUT:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_reader.join().expect("stdout reader");
    let stderr = err_reader.join().expect("stderr reader");
    assert!(
        status.code().is_some(),
        "takt {args:?} died from a signal: {status}\n{stderr}"
    );
    assert_ne!(
        status.code(),
        Some(101),
        "takt {args:?} panicked:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "takt {args:?} panicked:\n{stderr}"
    );
    Outcome {
        code: status.code(),
        stdout,
        stderr,
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("takt-trace-tools-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let p = dir.join(name);
    let _ = std::fs::remove_dir_all(&p);
    let _ = std::fs::remove_file(&p);
    p
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

// ---------------------------------------------------------------------------------------
// The synthetic run: written by `fixture` (shared with takt-trace's own tests), into this
// test's scratch directory.
// ---------------------------------------------------------------------------------------

/// The two files of the synthetic run.
fn synthetic(name: &str, bound_data_age_ns: u64) -> (PathBuf, PathBuf) {
    let a = scratch(&format!("{name}-sensing.trc"));
    let b = scratch(&format!("{name}-filtering.trc"));
    fixture::write_synthetic(&a, &b, bound_data_age_ns);
    (a, b)
}

fn task<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["tasks"]
        .as_array()
        .expect("tasks array")
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no task {name} in {report:#}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{v} is not an unsigned integer"))
}

fn within_hdr_precision(got: &Value, exact: u64) -> bool {
    let got = u(got);
    got >= exact && got <= exact + exact / 1000
}

// ---------------------------------------------------------------------------------------
// report
// ---------------------------------------------------------------------------------------

#[test]
fn report_json_gives_the_hand_computed_figures() {
    let (a, b) = synthetic("report", 12 * MS);
    let out = takt(&["trace", "report", s(&a), s(&b), "--json"]);
    assert!(out.ok(), "report failed: {}", out.stderr);
    let r = out.json();

    assert_eq!(r["format_version"], 1);
    assert_eq!(r["clock"], "real");
    assert_eq!(u(&r["epoch_ns"]), EPOCH_NS);
    assert_eq!(u(&r["hyperperiod_ns"]), 10 * MS);
    assert_eq!(r["deployment"], "sensing+filtering");
    assert_eq!(r["files"].as_array().unwrap().len(), 2);
    assert_eq!(r["break"], Value::Null);
    assert_eq!(u(&r["dropped_events"]), 3);

    let sensor = task(&r, "sensor");
    assert_eq!(
        [
            &sensor["jobs"],
            &sensor["executed"],
            &sensor["skips"],
            &sensor["overruns"],
            &sensor["deadline_misses"]
        ]
        .map(u),
        [10, 10, 0, 0, 0]
    );
    for q in ["min", "p50", "p99", "max"] {
        assert_eq!(
            u(&sensor[format!("lateness_ns_{q}")]),
            SENSOR_LATE_NS,
            "sensor lateness {q}"
        );
        assert_eq!(
            u(&sensor[format!("execution_ns_{q}")]),
            SENSOR_EXEC_NS,
            "sensor execution {q}"
        );
    }
    assert_eq!(u(&sensor["core"]), 0);
    assert_eq!(u(&sensor["let_ns"]), 2 * MS);

    let filter = task(&r, "filter");
    assert_eq!(
        [
            &filter["jobs"],
            &filter["executed"],
            &filter["skips"],
            &filter["overruns"],
            &filter["deadline_misses"],
            &filter["incomplete"]
        ]
        .map(u),
        [20, 19, 1, 2, 1, 0]
    );
    // Who caused them, as the records say: job 7's overrun the platform, job 9's overrun
    // and the skip after it the task; the deadline miss has no `Miss` record here, so it
    // stays unattributed (as in a file of an older format).
    let attribution = &filter["attribution"];
    assert_eq!(
        [
            &attribution["platform"]["overruns"],
            &attribution["takt"]["overruns"],
            &attribution["takt"]["skips"],
            &attribution["unattributed"]["deadline_misses"],
        ]
        .map(u),
        [1, 1, 1, 1],
        "{filter:#}"
    );
    assert_eq!(u(&filter["off_cpu_ns_max"]), 500_000);
    for q in ["min", "p50", "p99", "max"] {
        assert_eq!(
            u(&filter[format!("lateness_ns_{q}")]),
            FILTER_LATE_NS,
            "filter lateness {q}"
        );
    }
    assert_eq!(u(&filter["execution_ns_min"]), FILTER_EXEC_NS);
    assert!(
        within_hdr_precision(&filter["execution_ns_p50"], FILTER_EXEC_NS),
        "{filter:#}"
    );
    // 19 samples: the nearest rank of p99 is the 19th, the largest.
    assert_eq!(u(&filter["execution_ns_p99"]), 990_000);
    assert_eq!(u(&filter["execution_ns_max"]), 990_000);

    let chains = r["chains"].as_array().unwrap();
    assert_eq!(chains.len(), 1);
    let c = &chains[0];
    assert_eq!(c["name"], "s2f");
    assert_eq!(c["tasks"], serde_json::json!(["sensor", "filter"]));
    assert_eq!(c["topics"], serde_json::json!(["raw"]));
    assert_eq!(c["invalid"], Value::Null);
    let m = &c["measured"];
    assert_eq!(
        [&m["instances"], &m["no_data"], &m["unknown"]].map(u),
        [19, 1, 0]
    );
    assert_eq!(u(&m["data_age_samples"]), 18);
    assert_eq!(u(&m["data_age_ns_min"]), 7 * MS);
    // 10 of 18 samples are 7 ms: the median is the 7 ms one.
    assert!(within_hdr_precision(&m["data_age_ns_p50"], 7 * MS), "{m:#}");
    assert_eq!(u(&m["data_age_ns_p99"]), 12 * MS);
    assert_eq!(u(&m["data_age_ns_max"]), 12 * MS);
    assert_eq!(u(&m["reaction_samples"]), 9);
    assert_eq!(u(&m["reaction_unknown"]), 0);
    for q in ["min", "p50", "p99", "max"] {
        assert_eq!(u(&m[format!("reaction_ns_{q}")]), 17 * MS, "reaction {q}");
    }
    assert_eq!(u(&c["bound"]["bound_data_age_ns"]), 12 * MS);
    assert_eq!(u(&c["bound"]["bound_reaction_ns"]), 17 * MS);
    assert_eq!(c["exceeds_bound"], false);

    let switches = r["mode_switches"].as_array().unwrap();
    assert_eq!(
        switches.len(),
        1,
        "one switch, recorded by two cores: {switches:?}"
    );
    let sw = &switches[0];
    assert_eq!(
        (sw["from"].as_str(), sw["to"].as_str()),
        (Some("drive"), Some("limp"))
    );
    assert_eq!((u(&sw["cycle"]), u(&sw["at_ns"])), (2, 20 * MS));
    assert_eq!(u(&sw["time_ns"]), EPOCH_NS + 20 * MS + 900);
    assert_eq!(sw["cores"], serde_json::json!([0, 1]));
}

#[test]
fn the_json_report_is_the_librarys_report_byte_for_byte() {
    // `takt trace report --json` is a thin layer over takt-trace: on a complete run and on
    // one whose second file is cut in half (a partial report with its break), the CLI
    // prints exactly what the library's report serializes to.
    let (a, b) = synthetic("library", 12 * MS);
    let cut = scratch("library-cut.trc");
    let bytes = std::fs::read(&b).expect("read");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    for files in [[a.clone(), b], [a, cut]] {
        let out = takt(&["trace", "report", s(&files[0]), s(&files[1]), "--json"]);
        assert!(out.ok(), "report failed: {}", out.stderr);
        let library = takt_trace::report(&files).expect("takt-trace reads the run");
        assert_eq!(
            out.stdout,
            serde_json::to_string_pretty(&library).expect("JSON") + "\n"
        );
    }
}

#[test]
fn a_chain_above_its_bound_is_flagged() {
    let (a, b) = synthetic("exceeds", 10 * MS);
    let out = takt(&["trace", "report", s(&a), s(&b), "--json"]);
    assert!(out.ok(), "{}", out.stderr);
    let c = &out.json()["chains"][0];
    assert_eq!(c["exceeds_bound"], true);
    assert_eq!(c["exceeds_data_age"], true);
    assert_eq!(c["exceeds_reaction"], false);
    let text = takt(&["trace", "report", s(&a), s(&b)]);
    assert!(text.ok());
    assert!(text.stdout.contains("EXCEEDS BOUND"), "{}", text.stdout);
}

#[test]
fn the_text_report_is_aligned_tables() {
    let (a, b) = synthetic("text", 12 * MS);
    let out = takt(&["trace", "report", s(&a), s(&b)]);
    assert!(out.ok(), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let head = lines
        .iter()
        .position(|l| l.trim_start().starts_with("task ") && l.contains("exec p99"))
        .unwrap_or_else(|| panic!("no task table:\n{}", out.stdout));
    // Every row of the table is as long as its header, and the numbers end in one column.
    let width = lines[head].len();
    let rows = &lines[head + 1..head + 3];
    for row in rows {
        assert_eq!(
            row.len(),
            width,
            "misaligned row {row:?} under {:?}",
            lines[head]
        );
    }
    assert!(rows[0].trim_start().starts_with("sensor"));
    assert!(rows[1].trim_start().starts_with("filter"));
    assert!(out.stdout.contains("s2f"));
    assert!(out.stdout.contains("`drive` -> `limp`"));
    assert!(out.stdout.contains("dropped events: 3"));
}

// ---------------------------------------------------------------------------------------
// export
// ---------------------------------------------------------------------------------------

#[test]
fn perfetto_export_has_a_slice_per_job_tracks_per_core_and_flows() {
    let (a, b) = synthetic("perfetto", 12 * MS);
    let out_path = scratch("perfetto.json");
    let out = takt(&["trace", "export", s(&a), s(&b), "--perfetto", s(&out_path)]);
    assert!(out.ok(), "{}", out.stderr);
    let text = std::fs::read_to_string(&out_path).expect("export written");
    let doc: Value = serde_json::from_str(&text).expect("the export is valid JSON");
    let events = doc["traceEvents"].as_array().expect("traceEvents array");
    let of = |ph: &'static str| events.iter().filter(move |e| e["ph"] == ph);

    // Tracks: one named thread per core.
    let mut threads: Vec<&str> = of("M")
        .filter(|e| e["name"] == "thread_name")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    threads.sort_unstable();
    assert_eq!(threads, vec!["core 0", "core 1"]);

    // A slice per executed job: 10 sensor + 19 filter.
    let slices: Vec<&Value> = of("X").collect();
    assert_eq!(slices.len(), 29);
    let first = slices
        .iter()
        .find(|e| e["name"] == "sensor#0")
        .expect("slice sensor#0");
    // Microseconds since the epoch: released 5 us late, ran 300 us.
    assert_eq!(first["ts"].as_f64(), Some(5.0));
    assert_eq!(first["dur"].as_f64(), Some(300.0));
    assert_eq!(first["tid"], 1);
    assert_eq!(u(&first["args"]["lateness_ns"]), SENSOR_LATE_NS);
    assert_eq!(u(&first["args"]["execution_ns"]), SENSOR_EXEC_NS);
    assert!(slices
        .iter()
        .any(|e| e["name"] == "filter#19" && e["tid"] == 2));
    assert!(
        !slices.iter().any(|e| e["name"] == "filter#12"),
        "job 12 was skipped"
    );

    // Flows: one per filter job that read a sample (18), each start inside its producer's
    // slice and each end inside its consumer's.
    let starts: Vec<&Value> = of("s").collect();
    let finishes: Vec<&Value> = of("f").collect();
    assert_eq!((starts.len(), finishes.len()), (18, 18));
    let inside = |e: &Value| {
        let ts = e["ts"].as_f64().unwrap();
        slices.iter().any(|x| {
            x["tid"] == e["tid"] && {
                let t0 = x["ts"].as_f64().unwrap();
                t0 <= ts && ts <= t0 + x["dur"].as_f64().unwrap()
            }
        })
    };
    for f in &finishes {
        assert_eq!(f["bp"], "e");
        let start = starts
            .iter()
            .find(|s| s["id"] == f["id"])
            .unwrap_or_else(|| panic!("flow {f} has no start"));
        assert!(
            inside(start) && inside(f),
            "flow {start} -> {f} is not bound to slices"
        );
        assert_eq!(
            (start["tid"].as_u64(), f["tid"].as_u64()),
            (Some(1), Some(2))
        );
    }

    // Instants: two overruns, one skip, one mode switch, one loss.
    let instants: Vec<&str> = of("i").map(|e| e["cat"].as_str().unwrap()).collect();
    let count = |cat: &str| instants.iter().filter(|c| **c == cat).count();
    assert_eq!(
        (
            count("overrun"),
            count("skip"),
            count("mode"),
            count("dropped")
        ),
        (2, 1, 1, 1)
    );
}

// ---------------------------------------------------------------------------------------
// plot and plan --svg
// ---------------------------------------------------------------------------------------

fn assert_svg(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{} is not XML: {e}", path.display()));
    assert_eq!(
        doc.root_element().tag_name().name(),
        "svg",
        "{}",
        path.display()
    );
    text
}

#[test]
fn plot_writes_histograms_and_a_gantt_chart_that_parse_as_xml() {
    let (a, b) = synthetic("plot", 12 * MS);
    let dir = scratch("plots");
    let out = takt(&["trace", "plot", s(&a), s(&b), "--svg", s(&dir)]);
    assert!(out.ok(), "{}", out.stderr);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("plot dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "chain_s2f_age.svg",
            "chain_s2f_reaction.svg",
            "exec_filter.svg",
            "exec_sensor.svg",
            "gantt.svg",
            "lateness_filter.svg",
            "lateness_sensor.svg",
        ]
    );
    for n in &names {
        assert_svg(&dir.join(n));
    }
    let gantt = assert_svg(&dir.join("gantt.svg"));
    for row in [
        "core 0 planned",
        "core 0 actual",
        "core 1 planned",
        "core 1 actual",
    ] {
        assert!(gantt.contains(row), "gantt.svg lacks row {row}");
    }
    assert!(gantt.contains("cycle 0"), "the first full cycle is cycle 0");
    let age = assert_svg(&dir.join("chain_s2f_age.svg"));
    assert!(
        age.contains("bound 12.00ms"),
        "the bound is drawn and named"
    );

    // Another cycle on request; one the trace does not hold is refused.
    let out = takt(&[
        "trace",
        "plot",
        s(&a),
        s(&b),
        "--svg",
        s(&dir),
        "--cycle",
        "3",
    ]);
    assert!(out.ok(), "{}", out.stderr);
    assert!(assert_svg(&dir.join("gantt.svg")).contains("cycle 3"));
    let out = takt(&[
        "trace",
        "plot",
        s(&a),
        s(&b),
        "--svg",
        s(&dir),
        "--cycle",
        "99",
    ]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("--cycle 99") && out.stderr.contains("0 to 9"),
        "{}",
        out.stderr
    );
}

#[test]
fn plan_svg_draws_the_default_or_a_named_mode() {
    let manifest = repo("config/acc.toml");
    let svg = scratch("plan.svg");
    let out = takt(&["plan", s(&manifest), "--svg", s(&svg)]);
    assert!(out.ok(), "{}", out.stderr);
    assert!(
        out.stdout.contains("verified"),
        "the text plan is still printed"
    );
    let text = assert_svg(&svg);
    assert!(text.contains("core 0") && text.contains("static tables"));

    let parked = scratch("plan-parked.svg");
    let out = takt(&[
        "plan",
        s(&manifest),
        "--svg",
        s(&parked),
        "--mode",
        "parked",
    ]);
    assert!(out.ok(), "{}", out.stderr);
    assert!(assert_svg(&parked).contains("mode `parked`"));

    let out = takt(&[
        "plan",
        s(&manifest),
        "--svg",
        s(&svg),
        "--mode",
        "no-such-mode",
    ]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("no-such-mode") && out.stderr.contains("parked"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.is_empty(),
        "nothing is printed before a bad --mode is refused"
    );
}

// ---------------------------------------------------------------------------------------
// damage
// ---------------------------------------------------------------------------------------

#[test]
fn a_file_cut_in_half_gives_a_partial_report_with_its_break() {
    let (_, b) = synthetic("cut", 12 * MS);
    let bytes = std::fs::read(&b).unwrap();
    let cut = scratch("cut-half.trc");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = takt(&["trace", "report", s(&cut), "--json"]);
    assert!(out.ok(), "a partial report exits 0: {}", out.stderr);
    assert!(out.stderr.contains("warning"), "{}", out.stderr);
    let r = out.json();
    let brk = &r["break"];
    assert_eq!(brk["file"], s(&cut));
    let offset = u(&brk["offset"]);
    assert!(offset > 0 && offset <= bytes.len() as u64 / 2, "{brk}");
    assert!(!brk["reason"].as_str().unwrap().is_empty());
    let jobs = u(&task(&r, "filter")["jobs"]);
    assert!(jobs > 0 && jobs < 20, "about half the jobs: {jobs}");

    // Export and plot work on what could be read.
    let json = scratch("cut.json");
    let out = takt(&["trace", "export", s(&cut), "--perfetto", s(&json)]);
    assert!(out.ok(), "{}", out.stderr);
    serde_json::from_str::<Value>(&std::fs::read_to_string(&json).unwrap()).expect("valid JSON");
    let dir = scratch("cut-plots");
    let out = takt(&["trace", "plot", s(&cut), "--svg", s(&dir)]);
    assert!(out.ok(), "{}", out.stderr);
    assert_svg(&dir.join("gantt.svg"));
}

#[test]
fn flipped_bytes_in_the_middle_give_a_partial_report_naming_the_checksum() {
    let (a, _) = synthetic("flip", 12 * MS);
    let mut bytes = std::fs::read(&a).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 4] {
        *b ^= 0x5a;
    }
    let flipped = scratch("flipped.trc");
    std::fs::write(&flipped, &bytes).unwrap();
    let out = takt(&["trace", "report", s(&flipped), "--json"]);
    assert!(out.ok(), "{}", out.stderr);
    let r = out.json();
    let reason = r["break"]["reason"].as_str().expect("a break").to_string();
    assert!(reason.contains("checksum"), "{reason}");
    assert!(u(&r["break"]["offset"]) <= mid as u64);
    let sensor = task(&r, "sensor");
    assert!(u(&sensor["jobs"]) < SENSOR_JOBS);
    // The text report says it is partial, too.
    let text = takt(&["trace", "report", s(&flipped)]);
    assert!(text.ok());
    assert!(text.stdout.contains("PARTIAL"), "{}", text.stdout);
}

#[test]
fn unreadable_files_exit_2_with_the_reason() {
    let junk = scratch("junk.trc");
    std::fs::write(&junk, b"definitely not a trace file").unwrap();
    let out = takt(&["trace", "report", s(&junk)]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("junk.trc") && out.stderr.contains("not a takt trace file"),
        "{}",
        out.stderr
    );

    let empty = scratch("empty.trc");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(
        takt(&["trace", "report", s(&empty), "--json"]).code,
        Some(2)
    );

    let missing = scratch("missing.trc");
    let out = takt(&[
        "trace",
        "export",
        s(&missing),
        "--perfetto",
        s(&scratch("m.json")),
    ]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("missing.trc"));

    // Files of two different runs are refused together.
    let (a, _) = synthetic("mixed", 12 * MS);
    let other = scratch("other-run.trc");
    let mut h = header("other", 12 * MS);
    h.epoch_ns += 1;
    write_trace(&other, &h, &sensor_jobs());
    let out = takt(&["trace", "report", s(&a), s(&other)]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("epoch"), "{}", out.stderr);
}

#[test]
fn no_cut_or_flipped_byte_makes_any_verb_panic() {
    let (a, _) = synthetic("fuzz", 12 * MS);
    let bytes = std::fs::read(&a).unwrap();
    let damaged = scratch("fuzz.trc");
    let json = scratch("fuzz.json");
    let dir = scratch("fuzz-plots");
    // Cuts and flips spread over the whole file, header included.
    let step = (bytes.len() / 24).max(1);
    for (i, at) in (0..bytes.len()).step_by(step).enumerate() {
        let mut copy = bytes.clone();
        if i % 2 == 0 {
            copy.truncate(at);
        } else {
            copy[at] ^= 0xff;
        }
        std::fs::write(&damaged, &copy).unwrap();
        let verb = match i % 3 {
            0 => vec!["trace", "report", s(&damaged), "--json"],
            1 => vec!["trace", "export", s(&damaged), "--perfetto", s(&json)],
            _ => vec!["trace", "plot", s(&damaged), "--svg", s(&dir)],
        };
        // `takt` itself asserts no panic and no signal; the exit code is 0 (partial) or 2.
        let out = takt(&verb);
        assert!(
            matches!(out.code, Some(0) | Some(2)),
            "{verb:?} on damage at byte {at}: exit {:?}\n{}",
            out.code,
            out.stderr
        );
        if out.code == Some(0) && verb[1] == "report" {
            assert!(
                out.json()["break"].is_object(),
                "damage at byte {at} went unnoticed"
            );
        }
    }
}

/// A process killed before its writer wrote anything leaves an empty file: among the other
/// files of the run it is left out with a warning, not a reason to refuse them all.
#[test]
fn an_empty_file_among_a_runs_files_is_left_out_with_a_warning() {
    let (a, b) = synthetic("empty-among", 12 * MS);
    let empty = scratch("empty-among.trc.standby");
    std::fs::write(&empty, b"").unwrap();
    let out = takt(&["trace", "report", s(&a), s(&b), s(&empty), "--json"]);
    assert!(out.ok(), "exit {:?}\n{}", out.code, out.stderr);
    assert!(out.stderr.contains("empty"), "{}", out.stderr);
    assert_eq!(out.json()["files"].as_array().map(Vec::len), Some(2));
    // Alone, an empty file is still an error.
    let alone = takt(&["trace", "report", s(&empty)]);
    assert_eq!(alone.code, Some(2), "{}", alone.stderr);
}

/// A record whose checksum is valid can still name any task: the analysis gives each task
/// index a record uses one row (up to a cap), never one row per index below it.
#[test]
fn records_naming_huge_task_indices_are_reported_without_a_row_per_index() {
    let h = header("sensing", 12 * MS);
    let mut jobs = sensor_jobs();
    // One job of task u32::MAX - 1 (before: four billion rows), then 600 distinct undeclared
    // tasks spread over the index space (more than the rows the report gives them).
    let mut hostile = vec![TraceRecord::release(
        0,
        u32::MAX - 1,
        3,
        LogicalNs(0),
        MonoNs(0),
        0,
        1,
    )];
    for i in 0..600u32 {
        hostile.push(TraceRecord::release(
            0,
            1_000 + i * 7_000_000,
            1,
            LogicalNs(0),
            MonoNs(0),
            0,
            1,
        ));
    }
    jobs.push(hostile);
    let path = scratch("huge-task.trc");
    write_trace(&path, &h, &jobs);
    let out = takt(&["trace", "report", s(&path), "--json"]);
    assert!(out.ok(), "exit {:?}\n{}", out.code, out.stderr);
    let report = out.json();
    let rows = report["tasks"].as_array().expect("tasks").len();
    assert!(
        (3..=2 + 256).contains(&rows),
        "{rows} task rows for a header of 2 tasks and 601 undeclared indices"
    );
    let notes = report["releases"]["notes"].to_string();
    assert!(notes.contains("left out"), "{notes}");
    let text = takt(&["trace", "report", s(&path)]);
    assert!(text.ok(), "{}", text.stderr);
    let json = scratch("huge-task.json");
    let export = takt(&["trace", "export", s(&path), "--perfetto", s(&json)]);
    assert!(export.ok(), "{}", export.stderr);
    let dir = scratch("huge-task-plots");
    let plot = takt(&["trace", "plot", s(&path), "--svg", s(&dir)]);
    assert!(plot.ok(), "{}", plot.stderr);
}

// ---------------------------------------------------------------------------------------
// a real run
// ---------------------------------------------------------------------------------------

#[test]
fn a_real_simulated_acc_run_reports_chains_at_their_exact_bounds() {
    let manifest = repo("config/acc.toml");
    let trace = scratch("acc.trc");
    let out = takt(&[
        "run",
        s(&manifest),
        "--clock",
        "sim",
        "--duration",
        "1s",
        "--quiet",
        "--trace",
        s(&trace),
    ]);
    if !out.ok() && out.stderr.contains("--trace") {
        println!(
            "SKIPPED a_real_simulated_acc_run: `takt run` does not accept --trace yet:\n{}",
            out.stderr
        );
        return;
    }
    assert!(out.ok(), "takt run failed: {}", out.stderr);

    // A supervised run (simulated time too) writes one file per app process.
    let files = app_traces(&trace);
    let mut args = vec!["trace", "report"];
    args.extend(files.iter().map(String::as_str));
    args.push("--json");
    let rep = takt(&args);
    assert!(rep.ok(), "{}", rep.stderr);
    // The CLI prints the takt-trace library's report of the same files, byte for byte.
    let library = takt_trace::report(&files).expect("takt-trace reads the run");
    assert_eq!(
        rep.stdout,
        serde_json::to_string_pretty(&library).expect("JSON") + "\n"
    );
    let r = rep.json();
    assert_eq!(r["clock"], "sim");
    assert_eq!(
        r["break"],
        Value::Null,
        "a finished run leaves a complete file"
    );
    let tasks = r["tasks"].as_array().unwrap();
    assert!(!tasks.is_empty());
    let mut executed = 0;
    for t in tasks {
        executed += u(&t["executed"]);
        // Simulated time: every release is exactly on time, and no job misses.
        assert_eq!(u(&t["deadline_misses"]), 0, "{t:#}");
        if u(&t["executed"]) > 0 {
            assert_eq!(u(&t["lateness_ns_max"]), 0, "{t:#}");
        }
    }
    assert!(executed > 0);
    let chains = r["chains"].as_array().unwrap();
    assert!(!chains.is_empty(), "the ACC demo declares chains");
    for c in chains {
        let m = &c["measured"];
        assert!(u(&m["data_age_samples"]) > 0, "{c:#}");
        assert!(u(&m["reaction_samples"]) > 0, "{c:#}");
        assert_eq!(u(&m["unknown"]), 0, "{c:#}");
        // Under LET the data flow is a function of the schedule, and a second holds many
        // hyperperiods, so the measured worst cases are exactly the plan's exact bounds:
        // this checks that both use the same definitions.
        assert_eq!(c["exceeds_bound"], false, "{c:#}");
        assert_eq!(
            m["data_age_ns_max"], c["bound"]["bound_data_age_ns"],
            "{c:#}"
        );
        assert_eq!(
            m["reaction_ns_max"], c["bound"]["bound_reaction_ns"],
            "{c:#}"
        );
    }

    let json = scratch("acc.json");
    let mut args = vec!["trace", "export"];
    args.extend(files.iter().map(String::as_str));
    args.extend(["--perfetto", s(&json)]);
    let out = takt(&args);
    assert!(out.ok(), "{}", out.stderr);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let events = doc["traceEvents"].as_array().unwrap();
    let slices = events.iter().filter(|e| e["ph"] == "X").count() as u64;
    assert_eq!(slices, executed, "a slice per executed job");
    assert!(
        events.iter().any(|e| e["ph"] == "s"),
        "flow events along the chains"
    );

    let dir = scratch("acc-plots");
    let mut args = vec!["trace", "plot"];
    args.extend(files.iter().map(String::as_str));
    args.extend(["--svg", s(&dir)]);
    let out = takt(&args);
    assert!(out.ok(), "{}", out.stderr);
    for entry in std::fs::read_dir(&dir).unwrap() {
        assert_svg(&entry.unwrap().path());
    }
    assert_svg(&dir.join("gantt.svg"));
}

// ---------------------------------------------------------------------------------------
// release accounting across process files (OTA hot swap, restarts)
// ---------------------------------------------------------------------------------------
//
// A deployment with hyperperiod 10 ms and two apps, each with its own trace file as
// `takt run --trace BASE` names them (`BASE.<app>`, a later process of the app
// `BASE.<app>.<n>`): app `io` runs `tick` (task 0, period 5 ms: jobs 2c and 2c + 1 in cycle
// c), app `ctl` runs `slow` (task 1, period 10 ms: job c in cycle c). Mode `drive` releases
// both, mode `parked` only `slow`.

/// The release-accounting deployment's header; `with_modes` adds the per-mode task sets of
/// trace format 2, without them the tools must infer the modes' task sets.
fn swap_header(app: &str, with_modes: bool) -> TraceHeader {
    let mut h = TraceHeader::new(app, ClockKind::Real);
    h.manifest_hash = [7; 32];
    h.epoch_ns = EPOCH_NS;
    h.hyperperiod_ns = 10 * MS;
    h.task_names = vec!["tick".into(), "slow".into()];
    h.mode_names = vec!["drive".into(), "parked".into()];
    h.tasks = vec![
        TaskInfo {
            core: 0,
            period_ns: 5 * MS,
            offset_ns: 0,
            budget_ns: MS,
            let_ns: 5 * MS,
        },
        TaskInfo {
            core: 1,
            period_ns: 10 * MS,
            offset_ns: 2 * MS,
            budget_ns: MS,
            let_ns: 8 * MS,
        },
    ];
    if with_modes {
        h.mode_tasks = Some(ModeTasks {
            default_mode: 0,
            tasks: vec![vec![0, 1], vec![1]],
        });
    }
    h
}

/// The records of `task`'s jobs in hyperperiod cycles `cycles`, one `Vec` per job, as the
/// dispatcher writes them (release, start, end), each job on time and 100 us long.
fn task_cycles(task: u32, cycles: std::ops::Range<u64>) -> Vec<Vec<TraceRecord>> {
    let (period_ns, offset_ns, core) = if task == 0 {
        (5 * MS, 0, 0)
    } else {
        (10 * MS, 2 * MS, 1)
    };
    let per_cycle = 10 * MS / period_ns;
    let mut jobs = Vec::new();
    for cycle in cycles {
        for k in 0..per_cycle {
            let job = cycle * per_cycle + k;
            let r = job * period_ns + offset_ns;
            let at = EPOCH_NS + r;
            jobs.push(vec![
                TraceRecord::release(core, task, job, LogicalNs(r), MonoNs(at), r, MS),
                TraceRecord::start(core, task, job, LogicalNs(r), MonoNs(at)),
                TraceRecord::end(
                    core,
                    task,
                    job,
                    LogicalNs(r),
                    MonoNs(at + 100_000),
                    100_000,
                    0,
                ),
            ]);
        }
    }
    jobs
}

/// A mode switch at the start of `cycle` as the dispatcher of `core` records it.
fn switch_at(core: u8, cycle: u64, from_mode: u64, to_mode: u64) -> Vec<TraceRecord> {
    vec![TraceRecord::mode_switch(
        core,
        cycle,
        LogicalNs(cycle * 10 * MS),
        MonoNs(EPOCH_NS + cycle * 10 * MS + 50),
        from_mode,
        to_mode,
    )]
}

/// Writes one process's trace file `BASE.<app>[.<n>]` and returns its path.
fn process_file(base: &Path, suffix: &str, with_modes: bool, jobs: &[Vec<TraceRecord>]) -> PathBuf {
    let app = suffix.split('.').next().expect("a suffix names its app");
    let mut name = base.as_os_str().to_owned();
    name.push(format!(".{suffix}"));
    let path = PathBuf::from(name);
    let mut sorted: Vec<Vec<TraceRecord>> = jobs.to_vec();
    sorted.sort_by_key(|j| j.first().map_or(0, |r| r.time_ns));
    write_trace(&path, &swap_header(app, with_modes), &sorted);
    path
}

/// `takt trace report` of `files`, as JSON and as text.
fn report_both(files: &[PathBuf]) -> (Value, String) {
    let mut args: Vec<&str> = vec!["trace", "report"];
    args.extend(files.iter().map(|p| s(p)));
    let text = takt(&args);
    assert!(text.ok(), "text report failed: {}", text.stderr);
    args.push("--json");
    let json = takt(&args);
    assert!(json.ok(), "JSON report failed: {}", json.stderr);
    (json.json(), text.stdout)
}

/// `(planned, seen, missed, duplicate)` of `name`'s releases.
fn releases_of(report: &Value, name: &str) -> [u64; 4] {
    let r = &task(report, name)["releases"];
    [&r["planned"], &r["seen"], &r["missed"], &r["duplicate"]].map(u)
}

/// The top-level `(missed, duplicate)` totals.
fn release_totals(report: &Value) -> [u64; 2] {
    [
        &report["releases"]["missed"],
        &report["releases"]["duplicate"],
    ]
    .map(u)
}

#[test]
fn releases_of_one_complete_file_are_all_accounted() {
    let base = scratch("rel-complete.takt");
    let mut jobs = task_cycles(0, 0..8);
    jobs.extend(task_cycles(1, 0..8));
    let f = process_file(&base, "all", true, &jobs);
    let (r, text) = report_both(&[f]);
    assert_eq!(releases_of(&r, "tick"), [16, 16, 0, 0]);
    assert_eq!(releases_of(&r, "slow"), [8, 8, 0, 0]);
    assert_eq!(release_totals(&r), [0, 0]);
    assert_eq!(r["releases"]["expectation"], "header");
    let slow = &task(&r, "slow")["releases"];
    assert_eq!((u(&slow["first_job"]), u(&slow["last_job"])), (0, 7));
    assert_eq!(slow["missed_jobs"], serde_json::json!([]));
    assert!(
        text.contains("missed releases: 0, duplicate releases: 0"),
        "{text}"
    );
    assert!(!text.contains("  missed: "), "{text}");
}

#[test]
fn a_hot_swap_at_a_boundary_misses_and_duplicates_nothing() {
    // Process 1 of `ctl` runs cycles 0..=3, the new version 4..=7; `io` runs throughout.
    let base = scratch("rel-swap.takt");
    let io = process_file(&base, "io", true, &task_cycles(0, 0..8));
    let old = process_file(&base, "ctl", true, &task_cycles(1, 0..4));
    let new = process_file(&base, "ctl.1", true, &task_cycles(1, 4..8));
    let (r, text) = report_both(&[io, old, new]);
    assert_eq!(releases_of(&r, "slow"), [8, 8, 0, 0]);
    assert_eq!(releases_of(&r, "tick"), [16, 16, 0, 0]);
    assert_eq!(release_totals(&r), [0, 0]);
    assert!(
        text.contains("missed releases: 0, duplicate releases: 0"),
        "{text}"
    );
}

#[test]
fn a_cycle_between_the_old_and_the_new_process_is_a_missed_release_named_in_the_text() {
    // The new `ctl` starts one cycle late: cycle 4 (`slow` job 4) has no release anywhere.
    let base = scratch("rel-gap.takt");
    let io = process_file(&base, "io", true, &task_cycles(0, 0..8));
    let old = process_file(&base, "ctl", true, &task_cycles(1, 0..4));
    let new = process_file(&base, "ctl.1", true, &task_cycles(1, 5..8));
    let (r, text) = report_both(&[io, old, new]);
    assert_eq!(releases_of(&r, "slow"), [8, 7, 1, 0]);
    assert_eq!(releases_of(&r, "tick"), [16, 16, 0, 0]);
    assert_eq!(release_totals(&r), [1, 0]);
    assert_eq!(
        task(&r, "slow")["releases"]["missed_jobs"],
        serde_json::json!([[4, 4]])
    );
    assert!(
        text.contains("missed: task `slow` job 4 (cycle 4, mode `drive`)"),
        "{text}"
    );
    assert!(
        text.contains("missed releases: 1, duplicate releases: 0"),
        "{text}"
    );
    // `report_both` asserted exit code 0: a missed release is a finding, not a failure.
}

#[test]
fn a_cycle_run_by_both_the_old_and_the_new_process_is_a_duplicate_release() {
    // The old `ctl` still runs cycle 4, which the new one also runs.
    let base = scratch("rel-overlap.takt");
    let io = process_file(&base, "io", true, &task_cycles(0, 0..8));
    let old = process_file(&base, "ctl", true, &task_cycles(1, 0..5));
    let new = process_file(&base, "ctl.1", true, &task_cycles(1, 4..8));
    let (r, text) = report_both(&[io, old, new]);
    assert_eq!(releases_of(&r, "slow"), [8, 8, 0, 1]);
    assert_eq!(release_totals(&r), [0, 1]);
    assert_eq!(
        task(&r, "slow")["releases"]["duplicate_jobs"],
        serde_json::json!([[4, 2]])
    );
    assert!(
        text.contains("duplicate: task `slow` job 4 (cycle 4) released by 2 records"),
        "{text}"
    );
    assert!(
        text.contains("missed releases: 0, duplicate releases: 1"),
        "{text}"
    );
}

#[test]
fn a_mode_without_the_task_owes_no_release() {
    // drive for cycles 0..=2, parked (no `tick`) for 3..=5, drive again from 6; both
    // processes record both switches, as every dispatcher does.
    let base = scratch("rel-modes.takt");
    let io_jobs = |switches: bool| {
        let mut jobs = task_cycles(0, 0..3);
        jobs.extend(task_cycles(0, 6..8));
        if switches {
            jobs.push(switch_at(0, 3, 0, 1));
            jobs.push(switch_at(0, 6, 1, 0));
        }
        jobs
    };
    let mut ctl_jobs = task_cycles(1, 0..8);
    ctl_jobs.push(switch_at(1, 3, 0, 1));
    ctl_jobs.push(switch_at(1, 6, 1, 0));

    for with_modes in [true, false] {
        let io = process_file(&base, "io", with_modes, &io_jobs(true));
        let ctl = process_file(&base, "ctl", with_modes, &ctl_jobs);
        let (r, text) = report_both(&[io, ctl]);
        // `tick` owes 2 releases in each of the 5 drive cycles of its interval (0..=7).
        assert_eq!(
            releases_of(&r, "tick"),
            [10, 10, 0, 0],
            "modes: {with_modes}"
        );
        assert_eq!(releases_of(&r, "slow"), [8, 8, 0, 0], "modes: {with_modes}");
        assert_eq!(release_totals(&r), [0, 0]);
        assert_eq!(u(&r["releases"]["unplanned"]), 0);
        assert_eq!(
            r["releases"]["expectation"],
            if with_modes { "header" } else { "inferred" }
        );
        assert!(
            text.contains("missed releases: 0, duplicate releases: 0"),
            "{text}"
        );
    }

    // Without the switch records the parked cycles would be drive cycles: 6 misses. This
    // is what makes the zero above a finding rather than a default.
    let io = process_file(&base, "io", true, &io_jobs(false));
    let ctl = process_file(&base, "ctl", true, &task_cycles(1, 0..8));
    let (r, text) = report_both(&[io, ctl]);
    assert_eq!(releases_of(&r, "tick"), [16, 10, 6, 0]);
    assert!(
        text.contains("missed: task `tick` jobs 6..=11 (cycles 3..=5, mode `drive`)"),
        "{text}"
    );
}

#[test]
fn a_real_simulated_acc_run_misses_and_duplicates_no_release() {
    let manifest = repo("config/acc.toml");
    let trace = scratch("acc-releases.trc");
    let out = takt(&[
        "run",
        s(&manifest),
        "--clock",
        "sim",
        "--duration",
        "1s",
        "--quiet",
        "--trace",
        s(&trace),
    ]);
    assert!(out.ok(), "takt run failed: {}", out.stderr);
    // A supervised run (simulated time too) writes one file per app process.
    let files = app_traces(&trace);
    let mut args = vec!["trace", "report"];
    args.extend(files.iter().map(String::as_str));
    args.push("--json");
    let rep = takt(&args);
    assert!(rep.ok(), "{}", rep.stderr);
    let r = rep.json();
    assert_eq!(
        r["releases"]["expectation"], "header",
        "{:#}",
        r["releases"]
    );
    assert_eq!(release_totals(&r), [0, 0], "{:#}", r["releases"]);
    assert_eq!(u(&r["releases"]["unplanned"]), 0);
    // Every job of the second is planned and seen: `planned` is not trivially 0.
    let mut planned = 0;
    for t in r["tasks"].as_array().unwrap() {
        let rel = &t["releases"];
        assert_eq!(rel["planned"], rel["seen"], "{t:#}");
        planned += u(&rel["planned"]);
    }
    assert!(planned > 0);
}

/// The files a supervised run traced into `prefix`: `<prefix>.<app>` for the demo's apps.
fn app_traces(prefix: &Path) -> Vec<String> {
    ["sensing", "planning", "vehicle"]
        .iter()
        .map(|a| format!("{}.{a}", prefix.display()))
        .collect()
}

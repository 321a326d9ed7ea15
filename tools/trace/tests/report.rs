//! takt-trace as a latency tool other than the `takt` CLI uses it: this test target depends
//! on `takt-trace` and `takt` only (no clap, no takt-cli, no process spawned), reads trace
//! files the runtime wrote and checks the figures.
//!
//! * A synthetic two-process run written with `takt::trace::TraceWriter` (the shared
//!   `fixture`), whose every figure is computed by hand in the fixture's docs.
//! * The real runs of `verification/fuzz/seeds/trace/` (written by `takt run --clock sim
//!   --trace` of the ACC demo, in an older trace format the reader migrates): simulated
//!   time, so every release is on time, none is missed, and every chain is measured at the
//!   plan's exact bound.
//! * Damaged and foreign files: warnings and typed errors, never a panic.
//! * `cargo tree`: the crate pulls in neither clap nor the CLI.
#![deny(unsafe_code)]

mod fixture;

use std::path::{Path, PathBuf};
use std::process::Command;

use fixture::{EPOCH_NS, FILTER_EXEC_NS, FILTER_LATE_NS, MS, SENSOR_EXEC_NS, SENSOR_LATE_NS};
use takt::trace::{BreakReason, ReadManyError, TraceOpenError};
use takt_trace::report::{Clock, Expectation, TaskReport};
use takt_trace::{LoadError, LoadWarning, Report};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("takt-trace-lib-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// The two files of the synthetic run.
fn synthetic(name: &str, bound_data_age_ns: u64) -> [PathBuf; 2] {
    let a = scratch(&format!("{name}-sensing.trc"));
    let b = scratch(&format!("{name}-filtering.trc"));
    fixture::write_synthetic(&a, &b, bound_data_age_ns);
    [a, b]
}

fn task<'a>(r: &'a Report, name: &str) -> &'a TaskReport {
    r.tasks
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no task {name} in {r:#?}"))
}

/// Within the HDR histogram's 3 significant digits above the exact value.
fn within_hdr_precision(got: Option<u64>, exact: u64) -> bool {
    got.is_some_and(|g| g >= exact && g <= exact + exact / 1000)
}

#[test]
fn the_synthetic_run_gives_the_hand_computed_figures() {
    let files = synthetic("figures", 12 * MS);
    let run = takt_trace::load(&files).expect("load the synthetic run");
    // Complete files; the filter's ring lost 3 records (a Dropped marker).
    assert_eq!(
        run.warnings(),
        vec![LoadWarning::RecordsLost { count: 3 }],
        "{:?}",
        run.warnings()
    );
    let r = Report::new(&run, &run.analyze());

    assert_eq!(r.format_version, takt_trace::FORMAT_VERSION);
    assert_eq!(r.clock, Clock::Real);
    assert_eq!((r.epoch_ns, r.hyperperiod_ns), (EPOCH_NS, 10 * MS));
    assert_eq!(r.deployment, "sensing+filtering");
    assert_eq!(r.files.len(), 2);
    assert!(r.break_.is_none());
    assert_eq!(r.dropped_events, 3);

    let sensor = task(&r, "sensor");
    assert_eq!(
        [
            sensor.jobs,
            sensor.executed,
            sensor.skips,
            sensor.overruns,
            sensor.deadline_misses
        ],
        [10, 10, 0, 0, 0]
    );
    let q = Some(SENSOR_LATE_NS);
    assert_eq!(
        [
            sensor.lateness_ns_min,
            sensor.lateness_ns_p50,
            sensor.lateness_ns_p99,
            sensor.lateness_ns_max
        ],
        [q; 4]
    );
    let q = Some(SENSOR_EXEC_NS);
    assert_eq!(
        [
            sensor.execution_ns_min,
            sensor.execution_ns_p50,
            sensor.execution_ns_p99,
            sensor.execution_ns_max
        ],
        [q; 4]
    );
    assert_eq!((sensor.core, sensor.let_ns), (Some(0), Some(2 * MS)));

    let filter = task(&r, "filter");
    assert_eq!(
        [
            filter.jobs,
            filter.executed,
            filter.skips,
            filter.overruns,
            filter.deadline_misses,
            filter.incomplete
        ],
        [20, 19, 1, 2, 1, 0]
    );
    // Job 7's overrun is the platform's, job 9's and the skip after it the task's; the miss
    // has no `Miss` record, so it is not attributed.
    let a = &filter.attribution;
    assert_eq!(
        [
            a.platform.overruns,
            a.takt.overruns,
            a.takt.skips,
            a.unattributed.deadline_misses
        ],
        [1, 1, 1, 1]
    );
    assert_eq!(filter.off_cpu_ns_max, Some(500_000));
    assert_eq!(
        (filter.lateness_ns_min, filter.lateness_ns_max),
        (Some(FILTER_LATE_NS), Some(FILTER_LATE_NS))
    );
    assert_eq!(filter.execution_ns_min, Some(FILTER_EXEC_NS));
    assert!(within_hdr_precision(
        filter.execution_ns_p50,
        FILTER_EXEC_NS
    ));
    // 19 samples: the nearest rank of p99 is the 19th, the largest.
    assert_eq!(
        (filter.execution_ns_p99, filter.execution_ns_max),
        (Some(990_000), Some(990_000))
    );
    // 20 filter jobs released over 10 cycles, none missed or twice.
    let rel = filter.releases.as_ref().expect("the filter's releases");
    assert_eq!(
        [rel.planned, rel.seen, rel.missed, rel.duplicate],
        [20, 20, 0, 0]
    );

    assert_eq!(r.chains.len(), 1);
    let c = &r.chains[0];
    assert_eq!((c.name.as_str(), c.invalid.as_deref()), ("s2f", None));
    assert_eq!(c.tasks, ["sensor", "filter"]);
    assert_eq!(c.topics, ["raw"]);
    let m = &c.measured;
    assert_eq!([m.instances, m.no_data, m.unknown], [19, 1, 0]);
    assert_eq!(m.data_age_samples, 18);
    assert_eq!(
        (m.data_age_ns_min, m.data_age_ns_p99, m.data_age_ns_max),
        (Some(7 * MS), Some(12 * MS), Some(12 * MS))
    );
    // 10 of 18 samples are 7 ms: the median is the 7 ms one.
    assert!(within_hdr_precision(m.data_age_ns_p50, 7 * MS));
    assert_eq!((m.reaction_samples, m.reaction_unknown), (9, 0));
    assert_eq!(m.reaction_ns_min, Some(17 * MS));
    assert_eq!(m.reaction_ns_max, Some(17 * MS));
    assert_eq!(
        (c.bound.bound_data_age_ns, c.bound.bound_reaction_ns),
        (Some(12 * MS), Some(17 * MS))
    );
    assert!(!c.exceeds_bound);

    assert_eq!(
        r.mode_switches.len(),
        1,
        "one switch, recorded by two cores"
    );
    let sw = &r.mode_switches[0];
    assert_eq!((sw.from.as_str(), sw.to.as_str()), ("drive", "limp"));
    assert_eq!((sw.cycle, sw.at_ns), (2, 20 * MS));
    assert_eq!(sw.time_ns, EPOCH_NS + 20 * MS + 900);
    assert_eq!(sw.cores, [0, 1]);

    // The one-call entry point gives the same report.
    assert_eq!(takt_trace::report(&files).expect("report"), r);
}

#[test]
fn a_chain_above_its_bound_is_flagged() {
    let r = takt_trace::report(&synthetic("exceeds", 10 * MS)).expect("report");
    let c = &r.chains[0];
    assert!(c.exceeds_bound && c.exceeds_data_age && !c.exceeds_reaction);
}

#[test]
fn the_report_serializes_to_the_documented_json_and_reads_back() {
    let r = takt_trace::report(&synthetic("json", 12 * MS)).expect("report");
    let text = serde_json::to_string_pretty(&r).expect("serialize");
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    // Names as the module docs give them (`break`, not the Rust field's `break_`).
    for key in [
        "format_version",
        "deployment",
        "files",
        "clock",
        "epoch_ns",
        "hyperperiod_ns",
        "tasks",
        "chains",
        "mode_switches",
        "releases",
        "dropped_events",
        "break",
    ] {
        assert!(v.get(key).is_some(), "no `{key}` in {text}");
    }
    assert_eq!(v["clock"], "real");
    // The synthetic header carries no per-mode task sets (as a format-1 file).
    assert_eq!(v["releases"]["expectation"], "inferred");
    assert_eq!(v["tasks"][0]["lateness_ns_max"], SENSOR_LATE_NS);
    let back: Report = serde_json::from_str(&text).expect("read back");
    assert_eq!(back, r);
}

#[test]
fn real_simulated_runs_release_every_job_on_time_and_meet_their_bounds_exactly() {
    let dir = repo("verification/fuzz/seeds/trace");
    // 200 ms hold five hyperperiods: every chain has reached its worst case; 40 ms hold one.
    for (name, at_worst_case) in [("acc-200ms.takt", true), ("acc-40ms.takt", false)] {
        let path = dir.join(name);
        let run = takt_trace::load(&[&path]).expect("load a real run");
        assert!(run.warnings().is_empty(), "{name}: {:?}", run.warnings());
        let r = Report::new(&run, &run.analyze());
        assert_eq!(r.clock, Clock::Sim, "{name}");
        assert!(
            r.break_.is_none(),
            "{name}: a finished run leaves a complete file"
        );
        // An older trace format: which tasks a mode releases is inferred from the records.
        assert_eq!(r.releases.expectation, Expectation::Inferred, "{name}");
        assert!(r.releases.planned > 0, "{name}");
        assert_eq!(
            [
                r.releases.missed,
                r.releases.duplicate,
                r.releases.unplanned
            ],
            [0, 0, 0],
            "{name}: {:?}",
            r.releases
        );
        assert!(!r.tasks.is_empty(), "{name}");
        for t in &r.tasks {
            assert!(t.executed > 0, "{name}: {t:?}");
            // Simulated time: every release exactly on time, no job misses.
            assert_eq!(
                (t.deadline_misses, t.lateness_ns_max),
                (0, Some(0)),
                "{name}: {t:?}"
            );
            let rel = t.releases.as_ref().expect("releases");
            assert_eq!(rel.planned, rel.seen, "{name}: {t:?}");
        }
        assert!(!r.chains.is_empty(), "{name}: the ACC demo declares chains");
        for c in &r.chains {
            let m = &c.measured;
            assert!(m.data_age_samples > 0 && m.unknown == 0, "{name}: {c:?}");
            assert!(!c.exceeds_bound, "{name}: {c:?}");
            // Under LET the data flow is a function of the schedule: once every chain has
            // reached its worst case, the measured worst data age is the plan's exact bound.
            if at_worst_case {
                assert_eq!(
                    m.data_age_ns_max, c.bound.bound_data_age_ns,
                    "{name}: {c:?}"
                );
            }
        }
    }
}

#[test]
fn damaged_and_foreign_files_give_warnings_and_typed_errors() {
    let [a, b] = synthetic("damage", 12 * MS);

    // Cut in half: everything before the cut, and a warning naming the file and the break.
    let bytes = std::fs::read(&b).expect("read");
    let cut = scratch("damage-cut.trc");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let run = takt_trace::load(&[&a, &cut]).expect("a cut file is read up to the cut");
    let warnings = run.warnings();
    assert!(
        warnings.iter().any(|w| matches!(w,
            LoadWarning::Damaged { path, at, .. }
                if *path == cut && matches!(at.reason, BreakReason::Truncated { .. })
        )),
        "{warnings:?}"
    );
    let r = Report::new(&run, &run.analyze());
    let brk = r.break_.as_ref().expect("the report names the break");
    assert_eq!(brk.file, cut.display().to_string());
    assert!(task(&r, "filter").jobs < 20);

    // An empty file among others is left out, loudly.
    let empty = scratch("damage-empty.trc");
    std::fs::write(&empty, b"").expect("write");
    let run = takt_trace::load(&[&a, &empty]).expect("an empty file is left out");
    assert_eq!(
        run.warnings(),
        vec![LoadWarning::EmptyFileLeftOut {
            path: empty.clone()
        }]
    );
    assert_eq!(run.files.len(), 1);

    // Not a trace, missing, none at all: typed errors with the reason in their text.
    let junk = scratch("damage-junk.trc");
    std::fs::write(&junk, b"not a trace at all").expect("write");
    let e = takt_trace::load(&[&junk]).expect_err("junk is refused");
    assert!(
        matches!(
            e,
            LoadError::Read(ReadManyError::Open(TraceOpenError::BadMagic { .. }))
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("is not a takt trace file"), "{e}");
    let missing = scratch("damage-missing.trc");
    let e = takt_trace::load(&[&missing]).expect_err("a missing file is refused");
    assert!(
        matches!(e, LoadError::Unreadable { ref path, .. } if *path == missing),
        "{e:?}"
    );
    let none: [&Path; 0] = [];
    assert!(matches!(takt_trace::load(&none), Err(LoadError::NoFiles)));
}

#[test]
fn the_crate_depends_on_neither_clap_nor_the_cli() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-p",
            "takt-trace",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--manifest-path",
        ])
        .arg(repo("Cargo.toml"))
        .output()
        .expect("run cargo tree");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tree.lines().any(|l| l.starts_with("takt-trace ")), "{tree}");
    assert!(tree.lines().any(|l| l.starts_with("takt ")), "{tree}");
    for banned in ["clap ", "takt-cli ", "plotters "] {
        assert!(
            !tree.lines().any(|l| l.starts_with(banned)),
            "takt-trace pulls in {banned}:\n{tree}"
        );
    }
}

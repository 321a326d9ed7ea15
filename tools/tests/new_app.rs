//! `takt new` as an integrator uses it: a fresh crate in a temporary directory, outside this
//! workspace, built with `cargo build --release`, then validated, planned and run in
//! simulated and (as root) real time by the shipped `takt` binary. The real run prints the
//! same digest as the simulated one.
//!
//! The crate builds against this source tree's runtime (the default of `--takt`) with this
//! tree's `Cargo.lock`, in a target directory kept under the workspace's `target/`, so only
//! the first build pays for compiling the dependencies.
#![deny(unsafe_code)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{inconclusive, run_verdict, takt, RunVerdict};
use std::time::Duration;

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `cmd` to its end, killing it after `limit` (a hang fails the test, not CI).
fn run(mut cmd: Command, limit: Duration) -> Output {
    common::run(&mut cmd, limit)
}

/// Crates only the platform side of takt needs (the CLI's argument parser, the
/// supervisor's event loop, OTA's signatures and slot MACs): an app must link none.
const PLATFORM_ONLY: &[&str] = &["clap", "mio", "signal-hook-mio", "ed25519-dalek", "hmac"];

/// `cargo tree` of the normal dependencies of the crate in `dir` (`packages`: of these
/// workspace members), refusing any of [`PLATFORM_ONLY`] and naming who pulls it in.
fn assert_links_no_platform(dir: &Path, packages: &[&str]) {
    let cargo = || {
        let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        c.current_dir(dir)
            .args(["tree", "--offline", "-e", "normal"]);
        for p in packages {
            c.args(["-p", p]);
        }
        c
    };
    let mut tree = cargo();
    tree.args(["--prefix", "none"]);
    let out = run(tree, Duration::from_secs(120));
    assert!(out.status.success(), "cargo tree:\n{}", text(&out));
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    let found: Vec<&str> = PLATFORM_ONLY
        .iter()
        .copied()
        .filter(|c| listed.lines().any(|l| l.split(' ').next() == Some(*c)))
        .collect();
    if let Some(first) = found.first() {
        let mut why = cargo();
        why.args(["-i", first]);
        let why = run(why, Duration::from_secs(120));
        panic!(
            "{} {packages:?} links platform-only crates {found:?}; `cargo tree -i {first}`:\n{}",
            dir.display(),
            text(&why)
        );
    }
    assert!(
        listed.lines().any(|l| l.starts_with("takt v")),
        "the tree lists takt at all:\n{listed}"
    );
}

#[test]
fn the_demo_app_crates_link_no_platform_crate() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    assert_links_no_platform(
        &repo,
        &[
            "takt-acc",
            "lane-msgs",
            "supplier-a-perception",
            "supplier-b-control",
        ],
    );
}

fn digest_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("digest: "))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("a digest line in\n{}", text(o)))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn build_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/takt-new-app")
}

#[test]
fn a_new_app_builds_outside_the_workspace_and_runs_under_the_shipped_takt() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = run(
        {
            let mut c = takt();
            c.args(["new", "lanewatch", "--dir"]).arg(tmp.path());
            c
        },
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", text(&out));
    let root = tmp.path().join("lanewatch");
    for f in ["Cargo.toml", "src/main.rs", "lanewatch.toml", "README.md"] {
        assert!(root.join(f).exists(), "takt new wrote {f}");
    }
    // What `takt new` writes is already formatted: `cargo fmt --check` leaves it alone.
    let mut fmt = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    fmt.args(["fmt", "--check"]).current_dir(&root);
    let out = run(fmt, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "cargo fmt --check of the new app:\n{}",
        text(&out)
    );
    // The crate is its own workspace: cargo must not find this repository's one.
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .args(["build", "--release", "--quiet"])
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", build_dir());
    let out = run(build, Duration::from_secs(1500));
    assert!(
        out.status.success(),
        "cargo build of the new app:\n{}",
        text(&out)
    );
    // The app API alone (issue #11.7): the crate's dependency tree, resolved for it alone,
    // holds nothing of the platform side of takt.
    assert_links_no_platform(&root, &[]);
    // The manifest names target/release/lanewatch next to it; the build went to a shared
    // target directory, so put the executable where the manifest says.
    let exe = root.join("target/release/lanewatch");
    std::fs::create_dir_all(exe.parent().expect("dir")).expect("target dir");
    std::fs::copy(build_dir().join("release/lanewatch"), &exe).expect("copy the executable");
    let manifest = root.join("lanewatch.toml");
    let m = manifest.to_str().expect("utf-8");

    let out = run(
        {
            let mut c = takt();
            c.args(["check", m]);
            c
        },
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "check:\n{}", text(&out));
    let out = run(
        {
            let mut c = takt();
            c.args(["plan", m]);
            c
        },
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "plan:\n{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("source_to_sink"));

    let sim = run(
        {
            let mut c = takt();
            c.args(["run", m, "--clock", "sim", "--duration", "2s", "--quiet"]);
            c
        },
        Duration::from_secs(120),
    );
    assert!(sim.status.success(), "sim run:\n{}", text(&sim));
    let stdout = String::from_utf8_lossy(&sim.stdout);
    // 200 sink jobs; the first one's LET input is not there yet (the source's first output
    // becomes visible at its deadline, 5 ms, the sink's release), so all 200 see a sample.
    assert!(
        stdout.contains("outcome: sink.samples_seen = 200"),
        "{stdout}"
    );
    assert!(
        stdout.contains("outcome: source.failed_publishes = 0"),
        "{stdout}"
    );
    let sim_digest = digest_of(&sim);

    // A parameter outside the range the executable declares is refused at its line.
    let loud = std::fs::read_to_string(&manifest)
        .expect("manifest")
        .replace("gain = 2.5", "gain = 1000.0");
    let loud_path = root.join("loud.toml");
    std::fs::write(&loud_path, &loud).expect("write");
    let out = run(
        {
            let mut c = takt();
            c.arg("check").arg(&loud_path);
            c
        },
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let line = loud
        .lines()
        .position(|l| l.starts_with("gain = "))
        .expect("the gain line")
        + 1;
    assert!(
        text(&out).contains(&format!("loud.toml:{line}:"))
            && text(&out).contains("task.source.params.gain")
            && text(&out).contains("outside the allowed range 0..=100"),
        "{}",
        text(&out)
    );

    // A wrong catalog is caught before anything starts: a task the executable lacks.
    let bad = std::fs::read_to_string(&manifest)
        .expect("manifest")
        .replace("name = \"sink\"", "name = \"sinq\"")
        .replace("[\"sink\"]", "[\"sinq\"]")
        .replace("\"source\", \"sink\"", "\"source\", \"sinq\"");
    let bad_path = root.join("bad.toml");
    std::fs::write(&bad_path, bad).expect("write");
    let out = run(
        {
            let mut c = takt();
            c.arg("check").arg(&bad_path);
            c
        },
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("`sinq`"), "{}", text(&out));

    // A second supplier's app, built separately, hosting `sink` with the two fields of
    // `Sample` swapped: same name, same size, same alignment. takt check must refuse the
    // deployment naming the field, before anything runs.
    let out = run(
        {
            let mut c = takt();
            c.args(["new", "swapped", "--dir"]).arg(tmp.path());
            c
        },
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", text(&out));
    let b = tmp.path().join("swapped");
    let main_rs = std::fs::read_to_string(b.join("src/main.rs")).expect("main.rs");
    let fields = "        /// The job index of the `source` job that wrote it.\n        pub seq: u64,\n        pub value: f64,\n";
    assert!(main_rs.contains(fields), "the template's Sample fields");
    // This supplier implements only `sink`: its registry is rewritten to declare just that.
    let start = main_rs
        .find("pub fn registry() -> Registry {")
        .expect("the template's registry");
    let end = start + main_rs[start..].find("\n}\n").expect("its end") + 3;
    let main_rs = format!(
        "{}pub fn registry() -> Registry {{\n    let mut r = Registry::new();\n    r.task(\"sink\", Ports::new().reads::<Sample>(TOPIC), build_sink);\n    r\n}}\n{}",
        &main_rs[..start],
        &main_rs[end..]
    )
    .replace(fields, "        pub value: f64,\n        pub seq: u64,\n")
    .replace("fn build_source", "#[allow(dead_code)]\nfn build_source")
    .replace("use takt::task::{\n    Param,", "#[allow(unused_imports)]\nuse takt::task::{\n    Param,");
    std::fs::write(b.join("src/main.rs"), main_rs).expect("write");
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .args(["build", "--release", "--quiet"])
        .current_dir(&b)
        .env("CARGO_TARGET_DIR", build_dir());
    let out = run(build, Duration::from_secs(1500));
    assert!(
        out.status.success(),
        "cargo build of the swapped app:\n{}",
        text(&out)
    );
    let two = std::fs::read_to_string(&manifest)
        .expect("manifest")
        .replace(
            "[[task]]\nname = \"sink\"\napp = \"lanewatch\"",
            "[[task]]\nname = \"sink\"\napp = \"reader\"",
        )
        + &format!(
            "\n[[app]]\nname = \"reader\"\nexecutable = \"{}\"\n",
            build_dir().join("release/swapped").display()
        );
    assert!(
        two.contains("app = \"reader\""),
        "the sink moved to the second app"
    );
    let two_path = root.join("two-suppliers.toml");
    std::fs::write(&two_path, two).expect("write");
    let out = run(
        {
            let mut c = takt();
            c.arg("check").arg(&two_path);
            c
        },
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("field seq: u64 at offset 0 vs u64 at offset 8"),
        "the first differing field is named: {}",
        text(&out)
    );

    if !is_root() {
        eprintln!("SKIPPED the real-time part of a_new_app_builds_outside_the_workspace_and_runs_under_the_shipped_takt: needs root for SCHED_FIFO");
        return;
    }
    let sock = tmp.path().join("ctl.sock");
    // A run whose misses are all the platform's (this VM stalls now and then) is not
    // compared: it is repeated, at most three attempts, each printed, then INCONCLUSIVE. A
    // miss that is takt's fails at once.
    let name = "a_new_app_builds_outside_the_workspace_and_runs_under_the_shipped_takt";
    for attempt in 1..=3 {
        let real = run(
            {
                let mut c = takt();
                c.args(["run", m, "--duration", "2s", "--quiet", "--control"])
                    .arg(&sock);
                c
            },
            Duration::from_secs(120),
        );
        assert!(real.status.success(), "real run:\n{}", text(&real));
        match run_verdict(&String::from_utf8_lossy(&real.stdout)) {
            RunVerdict::Kept => {
                assert_eq!(
                    digest_of(&real),
                    sim_digest,
                    "real time equals simulated time"
                );
                return;
            }
            RunVerdict::PlatformOnly(n, line) if attempt == 3 => {
                inconclusive(name, &format!("{n} platform misses ({line})"));
                return;
            }
            RunVerdict::PlatformOnly(_, line) => eprintln!(
                "RETRY {name}: attempt {attempt} of 3: every miss was the platform's: {line}"
            ),
            RunVerdict::Takt(line) => {
                panic!("{name}: takt missed its schedule: {line}\n{}", text(&real))
            }
        }
    }
}

#[test]
fn takt_new_refuses_bad_names_and_existing_directories() {
    let tmp = tempfile::tempdir().expect("temp dir");
    for bad in ["Lane", "1lane", "lane/keep", "", "takt"] {
        let out = takt()
            .args(["new", bad, "--dir"])
            .arg(tmp.path())
            .output()
            .expect("takt runs");
        assert_eq!(out.status.code(), Some(2), "`{bad}`: {}", text(&out));
    }
    std::fs::create_dir(tmp.path().join("taken")).expect("dir");
    let out = takt()
        .args(["new", "taken", "--dir"])
        .arg(tmp.path())
        .output()
        .expect("takt runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("exists already"), "{}", text(&out));
    let out = takt()
        .args(["new", "fine", "--dir"])
        .arg(tmp.path())
        .args(["--takt", "/nonexistent"])
        .output()
        .expect("takt runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--takt"), "{}", text(&out));
    assert!(
        !Path::new(&tmp.path().join("fine")).exists(),
        "nothing written"
    );
}

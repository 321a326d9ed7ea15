//! Two instances of one task implementation, as an integrator runs them: a fresh app crate
//! made with `takt new` in a temporary directory, outside this workspace, whose executable
//! implements `radar` (one implementation, parameters `gain` and `mount`) and `fusion` (reads
//! two radar topics). The manifest instantiates `radar` twice (`radar_front`, `radar_rear`)
//! with different parameters and different `[task.topics]`, and `fusion` reads both topics.
//!
//! The shipped `takt` binary checks, plans and runs it in simulated time twice: with every
//! task in one app process, and with one app process per task (three `[[app]]`s naming the
//! same executable, each process hosting only its own instance). Both runs must show both
//! instances ran with their own parameters, published on their own topics (the consumer sees
//! a different value on each, as the gains say), and print the same digest.
//!
//! The crate builds against this source tree's runtime with this tree's `Cargo.lock`, in the
//! target directory `tools/tests/new_app.rs` uses, so the dependencies are compiled once.
#![deny(unsafe_code)]

mod common;
use common::takt;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
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

fn build_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/takt-new-app")
}

/// The app: one `radar` implementation that knows nothing of instances (it opens the topic
/// it declares), and a `fusion` that reads two radar topics.
const MAIN_RS: &str = r#"#![deny(unsafe_code)]
//! Radars: one radar implementation, instantiated as often as the manifest says.

use sha2::{Digest, Sha256};
use takt::task::{
    Param, Ports, Reader, Registry, StepContext, Task, TaskBuildError, TaskBuilder, TaskReport,
    Writer,
};

takt::message! {
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct Track {
        pub job: u64,
        pub range_m: f64,
    }
}

struct Radar {
    out: Writer<Track>,
    gain: f64,
    mount: String,
    implementation: String,
    published: u64,
    hash: Sha256,
}

impl Task for Radar {
    fn step(&mut self, ctx: &StepContext) {
        let job = ctx.job_index();
        let range_m = self.gain * (job + 1) as f64;
        if self.out.publish(ctx, |t| *t = Track { job, range_m }).is_ok() {
            self.published += 1;
            self.hash.update(range_m.to_le_bytes());
        }
    }

    fn finish(&mut self, report: &mut TaskReport) {
        report.outcome.push(("mount".into(), self.mount.clone()));
        report.outcome.push(("impl".into(), self.implementation.clone()));
        report.outcome.push(("published".into(), self.published.to_string()));
        report.digest = Some(self.hash.clone().finalize().into());
    }
}

fn build_radar(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    Ok(Box::new(Radar {
        out: b.writer::<Track>("radar_track")?,
        gain: b.param_f64("gain", 1.0)?,
        mount: b.param_str("mount", "")?,
        implementation: b.impl_name().to_string(),
        published: 0,
        hash: Sha256::new(),
    }))
}

struct Fusion {
    inputs: [Reader<Track>; 2],
    last_m: [f64; 2],
    seen: [u64; 2],
    hash: Sha256,
}

impl Task for Fusion {
    fn step(&mut self, ctx: &StepContext) {
        for (i, input) in self.inputs.iter_mut().enumerate() {
            if let Some(s) = input.read(ctx) {
                let t: Track = *s.value;
                self.last_m[i] = t.range_m;
                self.seen[i] += 1;
                self.hash.update([i as u8]);
                self.hash.update(t.job.to_le_bytes());
                self.hash.update(t.range_m.to_le_bytes());
            }
        }
    }

    fn finish(&mut self, report: &mut TaskReport) {
        for (i, side) in ["front", "rear"].into_iter().enumerate() {
            report.outcome.push((format!("{side}_seen"), self.seen[i].to_string()));
            report.outcome.push((format!("{side}_last_m"), format!("{:.1}", self.last_m[i])));
        }
        report.digest = Some(self.hash.clone().finalize().into());
    }
}

fn build_fusion(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    Ok(Box::new(Fusion {
        inputs: [b.reader::<Track>("front_track")?, b.reader::<Track>("rear_track")?],
        last_m: [0.0; 2],
        seen: [0; 2],
        hash: Sha256::new(),
    }))
}

pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.task(
        "radar",
        Ports::new()
            .writes::<Track>("radar_track")
            .param("gain", Param::float(1.0).range(0.0, 10.0))
            .param("mount", Param::string("unset")),
        build_radar,
    )
    .task(
        "fusion",
        Ports::new()
            .reads::<Track>("front_track")
            .reads::<Track>("rear_track"),
        build_fusion,
    );
    r
}

fn main() -> std::process::ExitCode {
    takt::lifecycle::app_main(registry())
}
"#;

/// The deployment; `{front}`, `{rear}` and `{fuse}` are the apps hosting each task.
const MANIFEST: &str = r#"
[deployment]
name = "radars"
cores = [0]
priority = 70

{apps}

[[task]]
name = "radar_front"
impl = "radar"
app = "{front}"
period = "10ms"
budget = "500us"
core = 0
[task.topics]
radar_track = "front_track"
[task.params]
mount = "front"
gain = 2.0

[[task]]
name = "radar_rear"
impl = "radar"
app = "{rear}"
period = "10ms"
offset = "1ms"
budget = "500us"
core = 0
[task.topics]
radar_track = "rear_track"
[task.params]
mount = "rear"
gain = 0.5

[[task]]
name = "fusion"
app = "{fuse}"
period = "10ms"
offset = "5ms"
budget = "500us"
core = 0

[[channel]]
topic = "front_track"
type = "Track"
writer = "radar_front"
readers = ["fusion"]

[[channel]]
topic = "rear_track"
type = "Track"
writer = "radar_rear"
readers = ["fusion"]

[[chain]]
name = "front_path"
tasks = ["radar_front", "fusion"]

[[chain]]
name = "rear_path"
tasks = ["radar_rear", "fusion"]

[[mode]]
name = "run"
default = true
tasks = ["radar_front", "radar_rear", "fusion"]
"#;

fn app(name: &str) -> String {
    format!("[[app]]\nname = \"{name}\"\nexecutable = \"target/release/radars\"\n")
}

fn manifest(root: &Path, file: &str, hosts: [&str; 3]) -> PathBuf {
    let mut apps: Vec<&str> = hosts.to_vec();
    apps.sort_unstable();
    apps.dedup();
    let apps: Vec<String> = apps.into_iter().map(app).collect();
    let text = MANIFEST
        .replace("{apps}", &apps.join("\n"))
        .replace("{front}", hosts[0])
        .replace("{rear}", hosts[1])
        .replace("{fuse}", hosts[2]);
    let path = root.join(file);
    std::fs::write(&path, text).expect("write the manifest");
    path
}

fn takt_ok(args: &[&str]) -> Output {
    let out = run(
        {
            let mut c = takt();
            c.args(args);
            c
        },
        Duration::from_secs(180),
    );
    assert!(out.status.success(), "takt {args:?}:\n{}", text(&out));
    out
}

/// The `jobs` column of `task`'s row in the tasks table of a `takt trace report` (its first
/// row naming the task: `task core jobs run ...`).
fn jobs_in(report: &str, task: &str) -> u64 {
    report
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&task) && cols.len() > 3)
        .and_then(|cols| cols[2].parse().ok())
        .unwrap_or_else(|| panic!("a row of `{task}` in the tasks table:\n{report}"))
}

fn digest_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("digest: "))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("a digest line in\n{}", text(o)))
}

/// What a sim run of 1 s (100 jobs of every task) must report.
fn assert_instances_ran(o: &Output) {
    let stdout = String::from_utf8_lossy(&o.stdout);
    for line in [
        // Both instances of `radar` ran, each with its own parameters...
        "outcome: radar_front.impl = radar",
        "outcome: radar_rear.impl = radar",
        "outcome: radar_front.mount = front",
        "outcome: radar_rear.mount = rear",
        "outcome: radar_front.published = 100",
        "outcome: radar_rear.published = 100",
        // ...on their own topics: the consumer sees each radar's samples on its topic, with
        // the value that radar's gain gives. Its job k (at k*10+5 ms) reads job k-1 of each
        // radar (LET 10 ms: front's job k-1 is visible at k*10 ms, rear's at k*10+1 ms), so
        // 99 samples each, the last from job 98: range = gain * 99.
        "outcome: fusion.front_seen = 99",
        "outcome: fusion.rear_seen = 99",
        "outcome: fusion.front_last_m = 198.0",
        "outcome: fusion.rear_last_m = 49.5",
    ] {
        assert!(stdout.contains(line), "`{line}` in:\n{}", text(o));
    }
}

#[test]
fn one_implementation_runs_as_two_instances_in_one_process_and_in_one_process_each() {
    let tmp = tempfile::tempdir().expect("temp dir");
    takt_ok(&[
        "new",
        "radars",
        "--dir",
        tmp.path().to_str().expect("utf-8"),
    ]);
    let root = tmp.path().join("radars");
    std::fs::write(root.join("src/main.rs"), MAIN_RS).expect("write main.rs");
    // The crate is its own workspace: cargo must not find this repository's one.
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .args(["build", "--release", "--quiet"])
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", build_dir());
    let out = run(build, Duration::from_secs(1500));
    assert!(out.status.success(), "cargo build:\n{}", text(&out));
    let exe = root.join("target/release/radars");
    std::fs::create_dir_all(exe.parent().expect("dir")).expect("target dir");
    std::fs::copy(build_dir().join("release/radars"), &exe).expect("copy the executable");

    // One app process hosts all three tasks.
    let one = manifest(&root, "one.toml", ["radars", "radars", "radars"]);
    let one = one.to_str().expect("utf-8");
    takt_ok(&["check", one]);
    let plan = takt_ok(&["plan", one]);
    let plan_text = String::from_utf8_lossy(&plan.stdout);
    for name in ["radar_front", "radar_rear", "front_path", "rear_path"] {
        assert!(
            plan_text.contains(name),
            "`{name}` in the plan:\n{plan_text}"
        );
    }
    let single = takt_ok(&["run", one, "--clock", "sim", "--duration", "1s", "--quiet"]);
    assert_instances_ran(&single);
    assert!(
        String::from_utf8_lossy(&single.stderr)
            .contains("supervising 1 app processes [\"radars\"]"),
        "{}",
        text(&single)
    );

    // One app process per task: three apps naming the same executable, each hosting only
    // its own instance (the trace of each app's process shows only its task).
    let three = manifest(&root, "three.toml", ["front", "rear", "fuse"]);
    let three = three.to_str().expect("utf-8");
    takt_ok(&["check", three]);
    let trace = tmp.path().join("run.trace");
    let trace_arg = trace.to_str().expect("utf-8");
    let multi = takt_ok(&[
        "run",
        three,
        "--clock",
        "sim",
        "--duration",
        "1s",
        "--quiet",
        "--trace",
        trace_arg,
    ]);
    assert_instances_ran(&multi);
    assert!(
        String::from_utf8_lossy(&multi.stderr)
            .contains("supervising 3 app processes [\"front\", \"fuse\", \"rear\"]"),
        "{}",
        text(&multi)
    );
    assert_eq!(
        digest_of(&multi),
        digest_of(&single),
        "the same outputs whether the instances share a process or not"
    );
    for (app, own, others) in [
        ("front", "radar_front", ["radar_rear", "fusion"]),
        ("rear", "radar_rear", ["radar_front", "fusion"]),
        ("fuse", "fusion", ["radar_front", "radar_rear"]),
    ] {
        let file = format!("{trace_arg}.{app}");
        let report = takt_ok(&["trace", "report", &file]);
        let report = String::from_utf8_lossy(&report.stdout).into_owned();
        assert_eq!(
            jobs_in(&report, own),
            100,
            "app `{app}` ran `{own}`:\n{report}"
        );
        for other in others {
            assert_eq!(
                jobs_in(&report, other),
                0,
                "app `{app}` hosts only its own task, not `{other}`:\n{report}"
            );
        }
    }

    // The same implementation's instances both on one topic: refused before anything runs,
    // naming the line.
    let clash = std::fs::read_to_string(three).expect("manifest").replace(
        "radar_track = \"rear_track\"",
        "radar_track = \"front_track\"",
    );
    let clash_path = root.join("clash.toml");
    std::fs::write(&clash_path, &clash).expect("write");
    let out = run(
        {
            let mut c = takt();
            c.arg("check").arg(&clash_path);
            c
        },
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let line = clash
        .lines()
        .position(|l| l == "name = \"radar_rear\"")
        .expect("the rear radar")
        + 1;
    assert!(
        text(&out).contains(&format!("clash.toml:{line}:"))
            && text(&out).contains("two writers on topic `front_track`"),
        "{}",
        text(&out)
    );
}

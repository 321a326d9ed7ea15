//! Several instances of one task implementation (`impl = "radar"` on a `[[task]]`, each with
//! its own `[task.params]` and `[task.topics]`): every manifest rule about instances, one
//! broken manifest each (error line, field and a key phrase), and a simulated run in which
//! two instances of one implementation publish on their own topics what their parameters
//! say, read by a consumer of both.

use std::collections::BTreeMap;

use takt::dispatch::{self, ClockKind, RunControl, RunOptions};
use takt::manifest::{self, Catalog, Deployment, ManifestError, ManifestLoadError};
use takt::task::{
    Param, Ports, Reader, Registry, StepContext, Task, TaskBuildError, TaskBuilder, TaskReport,
    Writer,
};

const CORES: usize = 4;

takt::message! {
    #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct Track {
        pub range_m: f64,
        pub job: u64,
    }
}

takt::message! {
    #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct Objects {
        pub nearest_m: f64,
        pub count: u64,
    }
}

/// Publishes `gain * (job + 1)` on the topic it declares as `radar_track`.
struct Radar {
    out: Writer<Track>,
    gain: f64,
    mount: String,
    impl_name: String,
    published: u64,
}

impl Task for Radar {
    fn step(&mut self, ctx: &StepContext) {
        let (range_m, job) = (self.gain * (ctx.job_index() + 1) as f64, ctx.job_index());
        let published = self.out.publish(ctx, |m| {
            m.range_m = range_m;
            m.job = job;
        });
        if published.is_ok() {
            self.published += 1;
        }
    }
    fn finish(&mut self, report: &mut TaskReport) {
        report.outcome.push(("mount".into(), self.mount.clone()));
        report.outcome.push(("impl".into(), self.impl_name.clone()));
        report
            .outcome
            .push(("published".into(), self.published.to_string()));
    }
}

fn build_radar(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    Ok(Box::new(Radar {
        // The declared topic: the builder maps it to the instance's own.
        out: b.writer("radar_track")?,
        gain: b.param_f64("gain", 1.0)?,
        mount: b.param_str("mount", "")?,
        impl_name: b.impl_name().to_string(),
        published: 0,
    }))
}

/// Reads both radars and records the last range seen on each.
struct Fusion {
    front: Reader<Track>,
    rear: Reader<Track>,
    last: [f64; 2],
    seen: [u64; 2],
}

impl Task for Fusion {
    fn step(&mut self, ctx: &StepContext) {
        for (i, r) in [&mut self.front, &mut self.rear].into_iter().enumerate() {
            if let Some(s) = r.read(ctx) {
                self.last[i] = s.range_m;
                self.seen[i] += 1;
            }
        }
    }
    fn finish(&mut self, report: &mut TaskReport) {
        for (i, side) in ["front", "rear"].iter().enumerate() {
            report
                .outcome
                .push((format!("{side}_last_m"), self.last[i].to_string()));
            report
                .outcome
                .push((format!("{side}_seen"), self.seen[i].to_string()));
        }
    }
}

fn build_fusion(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    Ok(Box::new(Fusion {
        front: b.reader("front_track")?,
        rear: b.reader("rear_track")?,
        last: [0.0; 2],
        seen: [0; 2],
    }))
}

/// Validation never constructs these.
fn not_built(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    Err(b.fail("never constructed"))
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.task(
        "radar",
        Ports::new()
            .writes::<Track>("radar_track")
            .param("gain", Param::float(1.0).range(0.0, 10.0))
            .param("mount", Param::required(manifest::ParamKind::Str)),
        build_radar,
    );
    r.task(
        "fusion",
        Ports::new()
            .reads::<Track>("front_track")
            .reads::<Track>("rear_track"),
        build_fusion,
    );
    // Two write ports: a mapping can put both on one topic.
    r.task(
        "dual",
        Ports::new().writes::<Track>("a").writes::<Track>("b"),
        not_built,
    );
    r.task(
        "camera",
        Ports::new().writes::<Objects>("camera_objects"),
        not_built,
    );
    r
}

/// Two radars from one implementation, each on its own topic with its own parameters, and
/// a consumer of both.
const GOOD: &str = r#"
[deployment]
name = "instances"
cores = [0, 1]

[[app]]
name = "sensors"

[[task]]
name = "radar_front"
impl = "radar"
app = "sensors"
period = "10ms"
budget = "1ms"
core = 0
[task.topics]
radar_track = "front_track"
[task.params]
mount = "front"
gain = 2.0

[[task]]
name = "radar_rear"
impl = "radar"
app = "sensors"
period = "10ms"
budget = "1ms"
core = 1
[task.topics]
radar_track = "rear_track"
[task.params]
mount = "rear"
gain = 0.5

[[task]]
name = "fusion"
app = "sensors"
period = "10ms"
offset = "2ms"
budget = "1ms"
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

[[mode]]
name = "front_only"
tasks = ["radar_front", "fusion"]
"#;

fn parse_with(text: &str, catalog: &Catalog) -> Result<Deployment, ManifestLoadError> {
    manifest::parse("inst.toml", text, catalog, CORES)
}

fn parse(text: &str) -> Result<Deployment, ManifestLoadError> {
    parse_with(text, registry().catalog())
}

/// `GOOD` with each `(from, to)` applied to the one occurrence of `from`.
fn edit(changes: &[(&str, &str)]) -> String {
    let mut text = GOOD.to_string();
    for (from, to) in changes {
        assert_eq!(text.matches(from).count(), 1, "`{from}` occurs once");
        text = text.replacen(from, to, 1);
    }
    text
}

/// 1-based line of the `nth` (0-based) line of `text` containing `needle`.
fn line_of(text: &str, needle: &str, nth: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .nth(nth)
        .map(|(i, _)| i + 1)
        .unwrap_or_else(|| panic!("`{needle}` (occurrence {nth}) is in the manifest"))
}

fn errors(text: &str) -> Vec<ManifestError> {
    match parse(text) {
        Ok(_) => panic!("the manifest was accepted:\n{text}"),
        Err(e) => e.errors,
    }
}

/// The one error on `field`; it must be on `line` and say every phrase of `says`.
fn expect_error(errors: &[ManifestError], line: usize, field: &str, says: &[&str]) {
    let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let e = errors
        .iter()
        .find(|e| e.field == field)
        .unwrap_or_else(|| panic!("an error on `{field}`; got:\n{}", all.join("\n")));
    assert_eq!(e.line, line, "line of {e}");
    assert_eq!(e.file, "inst.toml");
    for phrase in says {
        assert!(e.message.contains(phrase), "`{phrase}` in: {e}");
    }
}

#[test]
fn two_instances_of_one_implementation_are_accepted_with_their_own_topics_and_params() {
    let d = parse(GOOD).unwrap_or_else(|e| panic!("{e}"));
    let front = &d.tasks[d.task_id("radar_front").expect("radar_front")];
    let rear = &d.tasks[d.task_id("radar_rear").expect("radar_rear")];
    let fusion = &d.tasks[d.task_id("fusion").expect("fusion")];
    assert_eq!(front.implementation, "radar");
    assert_eq!(rear.implementation, "radar");
    assert_eq!(fusion.implementation, "fusion", "no impl: the task's name");
    assert_eq!(front.topic("radar_track"), "front_track");
    assert_eq!(rear.topic("radar_track"), "rear_track");
    assert_eq!(fusion.topic("front_track"), "front_track", "unmapped");
    assert_ne!(front.params, rear.params);
    // Chains, modes and channels name instances and mapped topics.
    let chain = |n: &str| d.chains.iter().find(|c| c.name == n).expect("chain");
    assert_eq!(chain("front_path").topics, ["front_track"]);
    assert_eq!(chain("rear_path").topics, ["rear_track"]);
    assert_eq!(
        d.channel("front_track").map(|c| c.writer),
        d.task_id("radar_front")
    );
    let p = takt::plan::synthesize(&d).unwrap_or_else(|e| panic!("plan: {e}"));
    takt::plan::verify(&d, &p).unwrap_or_else(|v| panic!("verify: {v:?}"));
}

#[test]
fn an_unknown_impl_is_located_and_lists_what_is_implemented() {
    let text = edit(&[(
        "impl = \"radar\"\napp = \"sensors\"\nperiod = \"10ms\"\nbudget = \"1ms\"\ncore = 1",
        "impl = \"radr\"\napp = \"sensors\"\nperiod = \"10ms\"\nbudget = \"1ms\"\ncore = 1",
    )]);
    let e = errors(&text);
    expect_error(
        &e,
        line_of(&text, "impl = \"radr\"", 0),
        "task.radar_rear.impl",
        &[
            "no task implementation `radr` is registered",
            "did you mean `radar`?",
            "`camera`, `dual`, `fusion`, `radar`",
        ],
    );
    // Nothing else about the instance is blamed on the unknown implementation.
    assert_eq!(e.len(), 1, "{e:?}");
}

#[test]
fn an_unknown_impl_names_the_apps_whose_executables_implement_each() {
    let mut catalog = registry().catalog().clone();
    for name in ["radar", "fusion", "dual", "camera"] {
        catalog
            .owners
            .insert(name.to_string(), vec!["sensors".to_string()]);
    }
    let text = edit(&[(
        "impl = \"radar\"\napp = \"sensors\"\nperiod = \"10ms\"\nbudget = \"1ms\"\ncore = 0",
        "impl = \"lidar\"\napp = \"sensors\"\nperiod = \"10ms\"\nbudget = \"1ms\"\ncore = 0",
    )]);
    let e = parse_with(&text, &catalog).expect_err("refused").errors;
    expect_error(
        &e,
        line_of(&text, "impl = \"lidar\"", 0),
        "task.radar_front.impl",
        &[
            "no task implementation `lidar`",
            "the apps' executables implement:",
            "`radar` (app `sensors`)",
        ],
    );
    // And with owners, an instance must be hosted by an app that implements its impl.
    let mut catalog = registry().catalog().clone();
    catalog
        .owners
        .insert("radar".to_string(), vec!["elsewhere".to_string()]);
    for name in ["fusion", "dual", "camera"] {
        catalog
            .owners
            .insert(name.to_string(), vec!["sensors".to_string()]);
    }
    let e = parse_with(GOOD, &catalog).expect_err("refused").errors;
    expect_error(
        &e,
        line_of(GOOD, "app = \"sensors\"", 0),
        "task.radar_front.app",
        &[
            "app `sensors` does not implement task implementation `radar` (of task `radar_front`)",
            "app `elsewhere`",
        ],
    );
}

#[test]
fn a_task_without_impl_must_be_named_after_an_implementation() {
    let text = edit(&[("name = \"fusion\"\napp", "name = \"fuse\"\napp")]);
    let e = errors(&text);
    expect_error(
        &e,
        line_of(&text, "name = \"fuse\"", 0),
        "task.fuse.name",
        &[
            "no task implementation is registered under the name `fuse`",
            "impl = ",
        ],
    );
}

#[test]
fn an_impl_that_is_not_a_name_is_refused() {
    let text = edit(&[(
        "impl = \"radar\"\napp = \"sensors\"\nperiod = \"10ms\"\nbudget = \"1ms\"\ncore = 0",
        "impl = 7\napp = \"sensors\"\nperiod = \"10ms\"\nbudget = \"1ms\"\ncore = 0",
    )]);
    let e = errors(&text);
    expect_error(
        &e,
        line_of(&text, "impl = 7", 0),
        "task.radar_front.impl",
        &["expected a string"],
    );
}

#[test]
fn a_mapping_key_that_is_not_a_declared_port_lists_the_declared_ports() {
    let text = edit(&[(
        "radar_track = \"front_track\"",
        "radar_trak = \"front_track\"",
    )]);
    let e = errors(&text);
    expect_error(
        &e,
        line_of(&text, "radar_trak", 0),
        "task.radar_front.topics.radar_trak",
        &[
            "task implementation `radar` declares no port on topic `radar_trak`",
            "did you mean `radar_track`?",
            "its declared ports: `radar_track` (writes Track)",
        ],
    );
}

#[test]
fn an_invalid_topic_name_in_a_mapping_is_refused() {
    let text = edit(&[(
        "radar_track = \"rear_track\"",
        "radar_track = \"rear track\"",
    )]);
    let e = errors(&text);
    expect_error(
        &e,
        line_of(&text, "rear track", 0),
        "task.radar_rear.topics.radar_track",
        &["topic name \"rear track\" contains ' '", "A-Z, a-z, 0-9"],
    );
    let text = edit(&[("radar_track = \"rear_track\"", "radar_track = 3")]);
    let e = errors(&text);
    expect_error(
        &e,
        line_of(&text, "radar_track = 3", 0),
        "task.radar_rear.topics.radar_track",
        &["expected a string"],
    );
    let text = edit(&[(
        "[task.topics]\nradar_track = \"rear_track\"",
        "topics = \"rear_track\"",
    )]);
    let e = errors(&text);
    expect_error(
        &e,
        line_of(&text, "topics = \"rear_track\"", 0),
        "task.radar_rear.topics",
        &["expected a table"],
    );
}

#[test]
fn two_instances_writing_one_topic_after_mapping_are_refused() {
    // The rear radar mapped onto the front radar's topic.
    let text = edit(&[(
        "radar_track = \"rear_track\"",
        "radar_track = \"front_track\"",
    )]);
    let e = errors(&text);
    expect_error(
        &e,
        line_of(&text, "name = \"radar_rear\"", 0),
        "task.radar_rear.name",
        &[
            "two writers on topic `front_track`",
            "names `radar_front` as its writer",
            "task `radar_rear` (implementation `radar`) writes it too (its port `radar_track`)",
        ],
    );
    // Neither instance mapped: both write the declared topic, and the second is told how to
    // give it one of its own.
    let text = edit(&[
        ("[task.topics]\nradar_track = \"front_track\"\n", ""),
        ("[task.topics]\nradar_track = \"rear_track\"\n", ""),
    ]);
    let e = errors(&text);
    expect_error(
        &e,
        line_of(&text, "name = \"radar_rear\"", 0),
        "task.radar_rear.name",
        &[
            "two writers on topic `radar_track`",
            "task `radar_front` (line",
            "[task.topics], e.g. radar_track = \"radar_rear_radar_track\"",
        ],
    );
}

#[test]
fn two_ports_of_one_instance_mapped_onto_one_topic_are_refused() {
    let text = GOOD.replace(
        "[[channel]]\ntopic = \"front_track\"",
        "[[task]]\nname = \"twin\"\nimpl = \"dual\"\napp = \"sensors\"\nperiod = \"10ms\"\nbudget = \"1ms\"\ncore = 1\n[task.topics]\na = \"twin_out\"\nb = \"twin_out\"\n\n[[channel]]\ntopic = \"twin_out\"\ntype = \"Track\"\nwriter = \"twin\"\n\n[[channel]]\ntopic = \"front_track\"",
    );
    let e = errors(&text);
    expect_error(
        &e,
        line_of(&text, "b = \"twin_out\"", 0),
        "task.twin.topics.b",
        &["ports `a` and `b` of task implementation `dual` both land on topic `twin_out` after mapping"],
    );
    // Mapping one port onto the other's declared topic is the same collision.
    let text = text.replace("a = \"twin_out\"\nb = \"twin_out\"", "a = \"b\"");
    let e = errors(&text);
    expect_error(
        &e,
        line_of(&text, "a = \"b\"", 0),
        "task.twin.topics.a",
        &["both land on topic `b` after mapping"],
    );
}

#[test]
fn a_type_mismatch_after_mapping_names_the_port() {
    let text = edit(&[(
        "topic = \"front_track\"\ntype = \"Track\"",
        "topic = \"front_track\"\ntype = \"Objects\"",
    )]);
    let e = errors(&text);
    expect_error(
        &e,
        line_of(&text, "writer = \"radar_front\"", 0),
        "channel.front_track.writer",
        &[
            "the type does not match",
            "task `radar_front` (implementation `radar`) writes topic `front_track` (its port `radar_track`) as `Track`",
            "the channel carries `Objects`",
        ],
    );
}

#[test]
fn a_channel_on_the_declared_topic_of_a_mapped_port_is_refused() {
    // The channel still uses the implementation's declared topic, the instance maps it away.
    let text = edit(&[(
        "topic = \"front_track\"\ntype = \"Track\"\nwriter = \"radar_front\"\nreaders = [\"fusion\"]",
        "topic = \"radar_track\"\ntype = \"Track\"\nwriter = \"radar_front\"\nreaders = []",
    )]);
    let e = errors(&text);
    expect_error(
        &e,
        line_of(&text, "writer = \"radar_front\"", 0),
        "channel.radar_track.writer",
        &[
            "task `radar_front` (implementation `radar`) does not write topic `radar_track`",
            "it writes `front_track` (Track, its port `radar_track`)",
        ],
    );
}

#[test]
fn every_instance_has_its_parameters_checked_against_the_implementation() {
    let text = edit(&[("gain = 0.5", "gain = 50.0"), ("mount = \"front\"\n", "")]);
    let e = errors(&text);
    expect_error(
        &e,
        line_of(&text, "gain = 50.0", 0),
        "task.radar_rear.params.gain",
        &["parameter `gain` = 50 is outside the allowed range 0..=10"],
    );
    expect_error(
        &e,
        line_of(&text, "name = \"radar_front\"", 0) - 1,
        "task.radar_front.params",
        &["parameter `mount` (string) is required by task implementation `radar`"],
    );
}

#[test]
fn two_instances_run_on_their_own_topics_with_their_own_parameters_in_simulated_time() {
    let d = parse(GOOD).unwrap_or_else(|e| panic!("{e}"));
    let p = takt::plan::synthesize(&d).unwrap_or_else(|e| panic!("plan: {e}"));
    let opts = RunOptions {
        clock: ClockKind::Sim,
        duration_ns: 200_000_000,
        namespace: Some(format!("inst{}", std::process::id())),
        ..RunOptions::default()
    };
    let r = dispatch::run(&d, &p, &registry(), &opts, &RunControl::new(0))
        .unwrap_or_else(|e| panic!("run: {e}"));
    let outcome: BTreeMap<String, BTreeMap<String, String>> = r
        .reports
        .iter()
        .map(|(task, rep)| (task.clone(), rep.outcome.iter().cloned().collect()))
        .collect();
    // Reports are per instance, in task-name order.
    let names: Vec<&str> = r.reports.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["fusion", "radar_front", "radar_rear"]);
    assert_eq!(outcome["radar_front"]["mount"], "front");
    assert_eq!(outcome["radar_rear"]["mount"], "rear");
    assert_eq!(outcome["radar_front"]["impl"], "radar");
    assert_eq!(outcome["radar_front"]["published"], "20");
    assert_eq!(outcome["radar_rear"]["published"], "20");
    // The fusion at 2 ms of job k sees each radar's job k-1 (LET = 10 ms): job 18 of 20 is
    // the last one visible to its last job, so front = 2.0 * 19, rear = 0.5 * 19.
    let fusion = &outcome["fusion"];
    assert_eq!(fusion["front_seen"], "19");
    assert_eq!(fusion["rear_seen"], "19");
    assert_eq!(fusion["front_last_m"], "38");
    assert_eq!(fusion["rear_last_m"], "9.5");
}

/// `GOOD` with the consumer in an app of its own, so the radars' app can be updated alone.
fn two_apps() -> Deployment {
    let text = GOOD
        .replace(
            "[[app]]\nname = \"sensors\"\n",
            "[[app]]\nname = \"sensors\"\n\n[[app]]\nname = \"fuse\"\n",
        )
        .replace(
            "name = \"fusion\"\napp = \"sensors\"",
            "name = \"fusion\"\napp = \"fuse\"",
        );
    parse(&text).unwrap_or_else(|e| panic!("{e}"))
}

fn stage(d: &Deployment, shipped: &Catalog) -> Result<Deployment, takt::ota::check::StageRefusal> {
    use takt::ota::bundle::{self, Entry, Fragment, TrustedKeys};
    let layouts = takt::catalog::AppCatalog::of(&registry()).layouts();
    let fragment = Fragment::from_deployment(d, shipped, &layouts, "sensors", 2, "2")
        .unwrap_or_else(|e| panic!("fragment: {e}"));
    let seed = [7u8; 32];
    let entries = vec![Entry {
        name: "sensors".into(),
        mode: 0o755,
        bytes: b"\x7fELF".to_vec(),
    }];
    let bytes = bundle::sign(&fragment, &entries, &bundle::signing_key(&seed)).expect("signs");
    let mut trusted = TrustedKeys::new();
    trusted.add(&bundle::public_key(&seed)).expect("key");
    let b = bundle::read(&bytes, &trusted).expect("verifies");
    let installed = takt::ota::check::Installed {
        version: 1,
        bad_versions: vec![],
    };
    takt::ota::check::check_stage(d, registry().catalog(), &layouts, &installed, &b)
}

#[test]
fn an_update_of_an_app_with_two_instances_lists_and_checks_their_mapped_topics() {
    use takt::ota::bundle::{Fragment, FragmentError, PortDirection};
    let d = two_apps();
    let catalog = registry().catalog().clone();
    let layouts = takt::catalog::AppCatalog::of(&registry()).layouts();
    let fr = Fragment::from_deployment(&d, &catalog, &layouts, "sensors", 2, "2")
        .unwrap_or_else(|e| panic!("fragment: {e}"));
    let tasks: Vec<&str> = fr.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(tasks, ["radar_front", "radar_rear"]);
    let ports: Vec<(&str, PortDirection, &str)> = fr
        .ports
        .iter()
        .map(|p| (p.topic.as_str(), p.direction, p.type_name.as_str()))
        .collect();
    assert_eq!(
        ports,
        [
            ("front_track", PortDirection::Write, "Track"),
            ("rear_track", PortDirection::Write, "Track")
        ]
    );
    stage(&d, &catalog).unwrap_or_else(|e| panic!("the same build stages: {e}"));

    // A build whose radar writes another type on its declared port: refused at the mapped
    // topics, before anything is written.
    let mut other = catalog.clone();
    other.tasks.get_mut("radar").expect("radar").writes[0].1 = "Objects";
    let err = stage(&d, &other).expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("port `front_track`") && text.contains("layout fingerprint"),
        "{text}"
    );

    // A build that does not implement the instances' implementation cannot be signed.
    let mut without = catalog.clone();
    without.tasks.remove("radar");
    let err =
        Fragment::from_deployment(&d, &without, &layouts, "sensors", 2, "2").expect_err("refused");
    assert!(
        matches!(&err, FragmentError::MissingImplementation { task, implementation }
            if task == "radar_front" && implementation == "radar"),
        "{err}"
    );
    // A build whose radar declares its port on another topic, so the mapping misses it.
    let mut moved = catalog.clone();
    moved.tasks.get_mut("radar").expect("radar").writes[0].0 = "track".into();
    let err =
        Fragment::from_deployment(&d, &moved, &layouts, "sensors", 2, "2").expect_err("refused");
    assert!(
        err.to_string()
            .contains("task `radar_front` writes topic `front_track`"),
        "{err}"
    );
}

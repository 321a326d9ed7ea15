//! Every manifest rule, one broken manifest each, checked through the public API against a
//! real `Registry`: each test asserts the error's line, its field and a key phrase of what
//! it says. The broken manifests are the good one (`src/manifest/testdata/good.toml`) with
//! one edit, so a failing test points at exactly one rule.

use std::path::PathBuf;

use takt::manifest::{
    self, limits, Deployment, FaultPolicy, ManifestError, ManifestLoadError, OtaSpec,
    OverrunPolicy, ParamValue, Probation,
};
use takt::task::{Ports, Registry};

const GOOD: &str = include_str!("../src/manifest/testdata/good.toml");

/// The machine the tests validate for: fixed, so results do not depend on the host.
const CORES: usize = 4;

const MS: u64 = 1_000_000;
const US: u64 = 1_000;

// The registry `GOOD` validates against, shared with the manifest fuzzer
// (`verification/fuzz/src/catalogs.rs`), so the two cannot drift apart.
#[path = "../src/manifest/testdata/rules_catalog.rs"]
mod rules_catalog;
use rules_catalog::{not_built, registry};

fn parse(text: &str) -> Result<Deployment, ManifestLoadError> {
    manifest::parse("test.toml", text, registry().catalog(), CORES)
}

/// `GOOD` with each `(from, to)` applied to the one occurrence of `from`.
fn edit(changes: &[(&str, &str)]) -> String {
    let mut text = GOOD.to_string();
    for (from, to) in changes {
        assert_eq!(
            text.matches(from).count(),
            1,
            "`{from}` occurs once in the manifest"
        );
        text = text.replacen(from, to, 1);
    }
    text
}

/// 1-based line of the `nth` (0-based) line of `text` that contains `needle`.
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
        Ok(_) => panic!("the manifest was accepted, but it breaks a rule:\n{text}"),
        Err(e) => e.errors,
    }
}

/// Asserts that refusing `text` reports an error on `line` for `field` whose message
/// contains every one of `phrases`; returns it.
fn expect_error(text: &str, line: usize, field: &str, phrases: &[&str]) -> ManifestError {
    let all = errors(text);
    let found = all.iter().find(|e| {
        e.line == line && e.field == field && phrases.iter().all(|p| e.message.contains(p))
    });
    match found {
        Some(e) => {
            assert_eq!(e.file, "test.toml");
            assert!(e.column >= 1);
            e.clone()
        }
        None => panic!(
            "no error on line {line} for `{field}` saying {phrases:?}; got:\n{}",
            ManifestLoadError { errors: all }
        ),
    }
}

// ---------------------------------------------------------------------------------------
// The good manifest.

#[test]
fn the_good_manifest_yields_the_expected_model() {
    let d = parse(GOOD).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.name, "acc-test");
    assert_eq!(d.source, "test.toml");
    assert_eq!(d.cores, [0, 1]);
    assert_eq!(d.priority, 70);
    assert_eq!(d.hyperperiod_ns, 20 * MS, "LCM of 10, 20, 10, 20 and 5 ms");

    let apps: Vec<(&str, Option<&str>)> = d
        .apps
        .iter()
        .map(|a| (a.name.as_str(), a.executable.as_deref()))
        .collect();
    assert_eq!(
        apps,
        [("sensing", Some("takt-acc-sensing")), ("control", None)]
    );

    let names: Vec<&str> = d.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["radar", "camera", "perception", "planner", "controller"]
    );
    let id = |n: &str| d.task_id(n).unwrap_or_else(|| panic!("task {n}"));

    let radar = &d.tasks[id("radar")];
    assert_eq!(radar.app, 0);
    assert_eq!(
        (
            radar.period_ns,
            radar.offset_ns,
            radar.budget_ns,
            radar.let_ns,
            radar.core
        ),
        (10 * MS, 0, 500 * US, 10 * MS, 0),
        "offset defaults to 0 and let to the period"
    );
    assert_eq!(radar.overrun, OverrunPolicy::Report, "the default policy");
    assert_eq!(radar.line, line_of(GOOD, "[[task]]", 0));
    let params: Vec<(&str, &ParamValue)> =
        radar.params.iter().map(|(k, v)| (k.as_str(), v)).collect();
    assert_eq!(
        params,
        [
            ("enabled", &ParamValue::Bool(true)),
            ("gain", &ParamValue::Float("0.5".into())),
            ("label", &ParamValue::Str("front".into())),
            ("seed", &ParamValue::Int(7)),
        ]
    );

    let camera = &d.tasks[id("camera")];
    assert_eq!(
        (
            camera.period_ns,
            camera.offset_ns,
            camera.budget_ns,
            camera.let_ns,
            camera.core
        ),
        (20 * MS, 2 * MS, 2 * MS, 10 * MS, 1)
    );
    assert_eq!(camera.overrun, OverrunPolicy::SkipNext);
    assert_eq!(camera.line, line_of(GOOD, "[[task]]", 1));
    assert!(camera.params.is_empty());

    let degraded = d.mode_id("degraded").expect("mode degraded");
    assert_eq!(degraded, 1);
    assert_eq!(
        d.tasks[id("perception")].overrun,
        OverrunPolicy::Escalate(degraded)
    );
    assert_eq!(d.tasks[id("planner")].app, 1);
    assert_eq!(d.tasks[id("controller")].let_ns, MS);

    let objects = d.channel("objects").expect("channel objects");
    assert_eq!(objects.type_name, "Objects");
    assert_eq!(objects.writer, id("perception"));
    assert_eq!(objects.readers, [id("planner")]);
    assert_eq!(d.channels.len(), 4);

    assert_eq!(d.chains.len(), 2);
    let chain = &d.chains[0];
    assert_eq!(chain.name, "sense_to_act");
    assert_eq!(
        chain.tasks,
        [
            id("radar"),
            id("perception"),
            id("planner"),
            id("controller")
        ]
    );
    assert_eq!(chain.topics, ["radar_track", "objects", "command"]);
    assert!(chain.precedence);
    assert_eq!(d.chains[1].topics, ["camera_objects"]);
    assert!(!d.chains[1].precedence, "precedence defaults to false");

    let modes: Vec<&str> = d.modes.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(modes, ["drive", "degraded", "parked"]);
    assert_eq!(d.default_mode, 0);
    assert_eq!(d.modes[0].tasks, [0, 1, 2, 3, 4]);
    assert_eq!(
        d.modes[1].tasks,
        [
            id("radar"),
            id("perception"),
            id("planner"),
            id("controller")
        ]
    );
    assert!(d.modes[2].tasks.is_empty());
    assert_eq!(d.update_safe_modes, [2]);
}

#[test]
fn omitted_optional_keys_take_their_defaults() {
    let text = edit(&[
        ("priority = 70\n", ""),
        ("update_safe_modes = [\"parked\"]\n", ""),
    ]);
    let d = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.priority, 80);
    assert!(d.update_safe_modes.is_empty());
}

#[test]
fn load_reads_the_file_and_names_it_as_source() {
    let path = std::env::temp_dir().join(format!("takt-rules-{}-good.toml", std::process::id()));
    std::fs::write(&path, GOOD).expect("write temp manifest");
    let d = manifest::load(&path, registry().catalog(), CORES);
    let _ = std::fs::remove_file(&path);
    let d = d.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.source, path.display().to_string());
}

// ---------------------------------------------------------------------------------------
// Files and syntax.

#[test]
fn a_toml_syntax_error_names_its_line() {
    let text = edit(&[(
        "[[app]]\nname = \"control\"\n",
        "[[app]]\nname = \"control\"\nthis is = = not toml\n",
    )]);
    let line = line_of(&text, "this is", 0);
    let e = expect_error(&text, line, "", &["invalid TOML"]);
    assert_eq!(
        errors(&text).len(),
        1,
        "only the syntax error: the tree behind it has holes"
    );
    assert!(e.column > 1);
}

#[test]
fn an_empty_file_is_one_line_saying_what_a_manifest_needs() {
    let all = errors("");
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].line, all[0].column), (1, 1));
    assert!(
        all[0].message.contains("needs a [deployment] table"),
        "{:?}",
        all[0]
    );
}

#[test]
fn a_missing_file_is_one_line_with_the_os_reason_and_no_position() {
    let path = PathBuf::from("/nonexistent/takt/missing.toml");
    let e = manifest::load(&path, registry().catalog(), CORES).expect_err("no such file");
    assert_eq!(e.errors.len(), 1);
    assert_eq!((e.errors[0].line, e.errors[0].column), (0, 0));
    assert_eq!(
        e.to_string(),
        "/nonexistent/takt/missing.toml: cannot read the manifest: No such file or directory (os error 2)"
    );
}

#[test]
fn an_oversized_file_is_refused() {
    let path = std::env::temp_dir().join(format!("takt-rules-{}-big.toml", std::process::id()));
    let mut text = GOOD.to_string();
    text.push_str(&"#".repeat(limits::MAX_MANIFEST_BYTES as usize));
    std::fs::write(&path, &text).expect("write temp manifest");
    let e = manifest::load(&path, registry().catalog(), CORES);
    let _ = std::fs::remove_file(&path);
    let e = e.expect_err("too large");
    assert_eq!(e.errors.len(), 1);
    assert!(
        e.errors[0]
            .message
            .contains("larger than the 1048576 bytes"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// Keys and types.

#[test]
fn an_unknown_key_is_named_with_the_allowed_ones() {
    let text = edit(&[("budget = \"500us\"", "budget = \"500us\"\nbugdet = \"1ms\"")]);
    let e = expect_error(
        &text,
        line_of(&text, "bugdet", 0),
        "task.radar.bugdet",
        &[
            "unknown key `bugdet`",
            "did you mean `budget`?",
            "allowed keys here: name, app, period",
        ],
    );
    assert_eq!(e.column, 1);

    let text = edit(&[("priority = 70", "priority = 70\ncpus = [0]")]);
    expect_error(
        &text,
        line_of(&text, "cpus", 0),
        "deployment.cpus",
        &["unknown key `cpus`", "cores, priority, update_safe_modes"],
    );

    let text = format!("{GOOD}\n[[modes]]\nname = \"x\"\n");
    expect_error(
        &text,
        line_of(&text, "[[modes]]", 0),
        "modes",
        &[
            "unknown key `modes` in the top level",
            "did you mean `mode`?",
        ],
    );
}

#[test]
fn a_missing_required_key_is_reported_at_its_table() {
    let text = edit(&[("budget = \"3ms\"\ncore = 1\n", "budget = \"3ms\"\n")]);
    let header = line_of(&text, "name = \"planner\"", 0) - 1;
    expect_error(
        &text,
        header,
        "task.planner.core",
        &["missing required key `core`", "core = 0"],
    );

    let text = edit(&[("name = \"acc-test\"\n", "")]);
    expect_error(
        &text,
        line_of(&text, "[deployment]", 0),
        "deployment.name",
        &["missing required key `name`"],
    );
}

#[test]
fn a_value_of_the_wrong_type_says_what_was_expected_and_found() {
    let text = edit(&[("priority = 70", "priority = \"high\"")]);
    expect_error(
        &text,
        line_of(&text, "priority", 0),
        "deployment.priority",
        &["expected an integer", "found string \"high\""],
    );

    let text = edit(&[("precedence = true", "precedence = \"yes\"")]);
    expect_error(
        &text,
        line_of(&text, "precedence", 0),
        "chain.sense_to_act.precedence",
        &["expected a boolean"],
    );

    let text = edit(&[("readers = [\"planner\"]", "readers = \"planner\"")]);
    expect_error(
        &text,
        line_of(&text, "readers = \"planner\"", 0),
        "channel.objects.readers",
        &["expected an array"],
    );

    // Arrays of scalars are parameters too; tables and arrays of arrays are not.
    for bad in ["seed = { value = 7 }", "seed = [[7]]"] {
        let text = edit(&[("seed = 7", bad)]);
        expect_error(
            &text,
            line_of(&text, "seed", 0),
            "task.radar.params.seed",
            &["expected an integer, float, boolean or string, or an array of one of those"],
        );
    }
}

#[test]
fn a_negative_duration_cannot_be_written() {
    let text = edit(&[("offset = \"1ms\"", "offset = \"-1ms\"")]);
    expect_error(
        &text,
        line_of(&text, "offset = \"-1ms\"", 0),
        "task.perception.offset",
        &["negative durations are not allowed", "ns, us, ms or s"],
    );
}

// ---------------------------------------------------------------------------------------
// Names and references.

#[test]
fn duplicate_names_point_at_the_first_definition() {
    let first = line_of(GOOD, "name = \"radar\"", 0);
    let text = edit(&[("name = \"camera\"", "name = \"radar\"")]);
    expect_error(
        &text,
        line_of(&text, "name = \"radar\"", 1),
        "task.radar.name",
        &["duplicate task name `radar`", &format!("line {first}")],
    );

    let text = edit(&[("name = \"control\"", "name = \"sensing\"")]);
    expect_error(
        &text,
        line_of(&text, "name = \"sensing\"", 1),
        "app.sensing.name",
        &["duplicate app name `sensing`"],
    );

    let text = edit(&[("name = \"degraded\"", "name = \"drive\"")]);
    expect_error(
        &text,
        line_of(&text, "name = \"drive\"", 1),
        "mode.drive.name",
        &["duplicate mode name `drive`"],
    );

    let text = edit(&[("name = \"camera_path\"", "name = \"sense_to_act\"")]);
    expect_error(
        &text,
        line_of(&text, "name = \"sense_to_act\"", 1),
        "chain.sense_to_act.name",
        &["duplicate chain name `sense_to_act`"],
    );
}

#[test]
fn references_to_unknown_sections_list_the_known_ones() {
    let text = edit(&[(
        "app = \"control\"\nperiod = \"20ms\"",
        "app = \"controls\"\nperiod = \"20ms\"",
    )]);
    expect_error(
        &text,
        line_of(&text, "controls", 0),
        "task.planner.app",
        &[
            "unknown app `controls`",
            "did you mean `control`?",
            "`control`, `sensing`",
        ],
    );

    let text = edit(&[("type = \"Command\"", "type = \"Comand\"")]);
    expect_error(
        &text,
        line_of(&text, "Comand", 0),
        "channel.command.type",
        &[
            "unknown message type `Comand`",
            "`Command`, `Objects`, `RadarTrack`",
        ],
    );

    let text = edit(&[("writer = \"planner\"", "writer = \"plan\"")]);
    expect_error(
        &text,
        line_of(&text, "writer = \"plan\"", 0),
        "channel.command.writer",
        &["unknown task `plan`"],
    );

    let text = edit(&[(
        "tasks = [\"camera\", \"perception\"]",
        "tasks = [\"camera\", \"perceptoin\"]",
    )]);
    expect_error(
        &text,
        line_of(&text, "perceptoin", 0),
        "chain.camera_path.tasks",
        &["unknown task `perceptoin`", "did you mean `perception`?"],
    );

    let text = edit(&[("tasks = []", "tasks = [\"sleeper\"]")]);
    expect_error(
        &text,
        line_of(&text, "sleeper", 0),
        "mode.parked.tasks",
        &["unknown task `sleeper`"],
    );
}

#[test]
fn a_task_name_must_be_a_registered_implementation() {
    let text = edit(&[
        ("name = \"controller\"", "name = \"actuator\""),
        ("\"planner\", \"controller\"]\nprecedence", "\"planner\", \"actuator\"]\nprecedence"),
        ("readers = [\"controller\"]", "readers = [\"actuator\"]"),
        (
            "tasks = [\"radar\", \"camera\", \"perception\", \"planner\", \"controller\"]",
            "tasks = [\"radar\", \"camera\", \"perception\", \"planner\", \"actuator\"]",
        ),
        (
            "tasks = [\"radar\", \"perception\", \"planner\", \"controller\"]\n\n[[mode]]\nname = \"parked\"",
            "tasks = [\"radar\", \"perception\", \"planner\", \"actuator\"]\n\n[[mode]]\nname = \"parked\"",
        ),
    ]);
    let e = expect_error(
        &text,
        line_of(&text, "name = \"actuator\"", 0),
        "task.actuator.name",
        &[
            "no task implementation is registered under the name `actuator`",
            "`controller`",
        ],
    );
    assert_eq!(
        errors(&text).len(),
        1,
        "only the registration is wrong: {e:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Timing.

#[test]
fn a_zero_period_is_refused() {
    let text = edit(&[("period = \"5ms\"", "period = \"0ms\"")]);
    expect_error(
        &text,
        line_of(&text, "\"0ms\"", 0),
        "task.controller.period",
        &["greater than 0"],
    );
}

#[test]
fn a_period_below_the_minimum_is_refused() {
    let text = edit(&[("period = \"5ms\"", "period = \"99us\"")]);
    expect_error(
        &text,
        line_of(&text, "\"99us\"", 0),
        "task.controller.period",
        &["period 99us is below the shortest allowed period 100us"],
    );
}

#[test]
fn an_offset_must_be_inside_the_period() {
    let text = edit(&[("offset = \"2ms\"", "offset = \"20ms\"")]);
    expect_error(
        &text,
        line_of(&text, "offset = \"20ms\"", 0),
        "task.camera.offset",
        &["offset 20ms must be less than the period 20ms"],
    );
}

#[test]
fn a_zero_budget_is_refused() {
    let text = edit(&[("budget = \"3ms\"", "budget = \"0ns\"")]);
    expect_error(
        &text,
        line_of(&text, "\"0ns\"", 0),
        "task.planner.budget",
        &["budget must be greater than 0"],
    );
}

#[test]
fn a_budget_larger_than_the_let_window_is_refused() {
    let text = edit(&[("budget = \"200us\"", "budget = \"2ms\"")]);
    expect_error(
        &text,
        line_of(&text, "budget = \"2ms\"", 1),
        "task.controller.budget",
        &[
            "budget 2ms exceeds the LET window 1ms",
            "budget <= let <= period",
        ],
    );
    // Without `let`, the window is the period.
    let text = edit(&[("budget = \"500us\"", "budget = \"11ms\"")]);
    expect_error(
        &text,
        line_of(&text, "\"11ms\"", 0),
        "task.radar.budget",
        &["defaults to the period", "10ms"],
    );
}

#[test]
fn a_let_window_longer_than_the_period_is_refused() {
    let text = edit(&[("let = \"10ms\"", "let = \"21ms\"")]);
    expect_error(
        &text,
        line_of(&text, "let = \"21ms\"", 0),
        "task.camera.let",
        &["LET window 21ms exceeds the period 20ms"],
    );
}

// ---------------------------------------------------------------------------------------
// Cores and priority.

#[test]
fn a_core_this_machine_does_not_have_is_refused() {
    let text = edit(&[("core = 0\n[task.params]", "core = 4\n[task.params]")]);
    expect_error(
        &text,
        line_of(&text, "core = 4", 0),
        "task.radar.core",
        &["core 4 does not exist on this machine", "4 cores: 0..=3"],
    );

    let text = edit(&[("cores = [0, 1]", "cores = [0, 9]")]);
    expect_error(
        &text,
        line_of(&text, "cores = [0, 9]", 0),
        "deployment.cores",
        &["core 9 does not exist on this machine"],
    );
}

#[test]
fn a_core_above_what_a_trace_record_can_name_is_refused_with_the_limit() {
    let text = edit(&[("cores = [0, 1]", "cores = [0, 256]")]);
    expect_error(
        &text,
        line_of(&text, "cores = [0, 256]", 0),
        "deployment.cores",
        &["core 256 is above 255"],
    );
}

#[test]
fn a_task_core_outside_the_deployment_cores_is_refused() {
    let text = edit(&[("core = 0\n[task.params]", "core = 2\n[task.params]")]);
    expect_error(
        &text,
        line_of(&text, "core = 2", 0),
        "task.radar.core",
        &["core 2 is not in deployment.cores [0, 1]"],
    );
}

#[test]
fn a_priority_outside_1_to_99_is_refused() {
    for bad in ["0", "100", "-5"] {
        let text = edit(&[("priority = 70", &format!("priority = {bad}"))]);
        expect_error(
            &text,
            line_of(&text, "priority", 0),
            "deployment.priority",
            &[&format!("priority {bad} is out of range"), "1..=99"],
        );
    }
}

// ---------------------------------------------------------------------------------------
// Channels and port signatures.

#[test]
fn two_channels_on_one_topic_are_two_writers() {
    let text = format!(
        "{GOOD}\n[[channel]]\ntopic = \"objects\"\ntype = \"Objects\"\nwriter = \"camera\"\n"
    );
    let first = line_of(&text, "topic = \"objects\"", 0);
    expect_error(
        &text,
        line_of(&text, "topic = \"objects\"", 1),
        "channel.objects.topic",
        &["two writers on topic `objects`", &format!("line {first}")],
    );
}

#[test]
fn a_second_implementation_writing_a_topic_is_a_second_writer() {
    let text = edit(&[(
        "[[channel]]\ntopic = \"radar_track\"",
        "[[task]]\nname = \"radar2\"\napp = \"sensing\"\nperiod = \"10ms\"\nbudget = \"100us\"\ncore = 1\n\n[[channel]]\ntopic = \"radar_track\"",
    )]);
    expect_error(
        &text,
        line_of(&text, "name = \"radar2\"", 0),
        "task.radar2.name",
        &[
            "two writers on topic `radar_track`",
            "names `radar` as its writer",
        ],
    );
}

#[test]
fn a_channel_writer_must_write_the_topic() {
    let text = edit(&[("writer = \"radar\"", "writer = \"camera\"")]);
    expect_error(
        &text,
        line_of(&text, "writer = \"camera\"", 0),
        "channel.radar_track.writer",
        &[
            "task `camera`'s implementation does not write topic `radar_track`",
            "`camera_objects` (Objects)",
        ],
    );
}

#[test]
fn a_reader_whose_type_does_not_match_names_both_types() {
    let text = edit(&[
        ("readers = [\"planner\"]", "readers = [\"planner\", \"bad_reader\"]"),
        (
            "[[channel]]\ntopic = \"command\"",
            "[[task]]\nname = \"bad_reader\"\napp = \"control\"\nperiod = \"10ms\"\nbudget = \"100us\"\ncore = 1\n\n[[channel]]\ntopic = \"command\"",
        ),
    ]);
    expect_error(
        &text,
        line_of(&text, "\"bad_reader\"]", 0),
        "channel.objects.readers",
        &[
            "type does not match",
            "reads topic `objects` as `Command`",
            "carries `Objects`",
        ],
    );
}

#[test]
fn a_declared_port_no_channel_connects_is_refused() {
    let extra = "[[task]]\nname = \"ghost\"\napp = \"control\"\nperiod = \"10ms\"\nbudget = \"100us\"\ncore = 1\n\n\
                 [[task]]\nname = \"logger\"\napp = \"control\"\nperiod = \"10ms\"\nbudget = \"100us\"\ncore = 1\n\n[[channel]]\ntopic = \"radar_track\"";
    let text = edit(&[("[[channel]]\ntopic = \"radar_track\"", extra)]);
    expect_error(
        &text,
        line_of(&text, "name = \"ghost\"", 0),
        "task.ghost.name",
        &[
            "writes topic `ghost_topic`",
            "no [[channel]] connects it",
            "would fail at start",
        ],
    );
    expect_error(
        &text,
        line_of(&text, "name = \"logger\"", 0),
        "task.logger.name",
        &[
            "reads topic `objects`",
            "does not list it among its readers",
            "would fail at start",
        ],
    );
}

#[test]
fn a_topic_has_at_most_the_port_layers_readers() {
    let many: Vec<String> = (0..9).map(|_| "\"planner\"".to_string()).collect();
    let text = edit(&[(
        "readers = [\"planner\"]",
        &format!("readers = [{}]", many.join(", ")),
    )]);
    expect_error(
        &text,
        line_of(&text, "readers = [\"planner\", ", 0),
        "channel.objects.readers",
        &["9 readers, 1 more than the 8 a topic supports"],
    );
}

// ---------------------------------------------------------------------------------------
// Chains and modes.

#[test]
fn chain_steps_must_be_linked_by_a_channel() {
    let text = edit(&[(
        "tasks = [\"camera\", \"perception\"]",
        "tasks = [\"camera\", \"planner\"]",
    )]);
    expect_error(
        &text,
        line_of(&text, "tasks = [\"camera\", \"planner\"]", 0),
        "chain.camera_path.tasks",
        &[
            "`camera` -> `planner` is not linked by a channel",
            "`camera` writes `camera_objects`",
        ],
    );

    let text = edit(&[(
        "tasks = [\"camera\", \"perception\"]",
        "tasks = [\"camera\"]",
    )]);
    expect_error(
        &text,
        line_of(&text, "tasks = [\"camera\"]", 0),
        "chain.camera_path.tasks",
        &["at least two tasks"],
    );
}

#[test]
fn chain_requirements_are_durations_and_default_to_none() {
    let d = parse(GOOD).unwrap_or_else(|e| panic!("{e}"));
    for c in &d.chains {
        assert_eq!(
            (c.max_data_age_ns, c.max_reaction_ns),
            (None, None),
            "chain `{}` states no requirement",
            c.name
        );
    }

    let text = edit(&[(
        "precedence = true",
        "precedence = true\nmax_data_age = \"40ms\"\nmax_reaction = \"1500us\"",
    )]);
    let d = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.chains[0].name, "sense_to_act");
    assert_eq!(d.chains[0].max_data_age_ns, Some(40 * MS));
    assert_eq!(d.chains[0].max_reaction_ns, Some(1500 * US));
    assert_eq!(
        (d.chains[1].max_data_age_ns, d.chains[1].max_reaction_ns),
        (None, None),
        "a requirement belongs to its own chain"
    );

    // One key without the other.
    let text = edit(&[(
        "tasks = [\"camera\", \"perception\"]",
        "tasks = [\"camera\", \"perception\"]\nmax_reaction = \"2s\"",
    )]);
    let d = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (d.chains[1].max_data_age_ns, d.chains[1].max_reaction_ns),
        (None, Some(2_000 * MS))
    );
}

#[test]
fn a_bad_chain_requirement_names_its_line_and_field() {
    // (value, field key, phrases): zero, negative, unitless, fractional, unknown unit,
    // wrong type.
    let cases: [(&str, &str, &[&str]); 7] = [
        (
            "max_data_age = \"0ms\"",
            "max_data_age",
            &["requirement is zero", "more than zero", "leave the key out"],
        ),
        (
            "max_reaction = \"0s\"",
            "max_reaction",
            &["requirement is zero", "more than zero"],
        ),
        (
            "max_data_age = \"-40ms\"",
            "max_data_age",
            &["negative durations are not allowed", "ns, us, ms or s"],
        ),
        (
            "max_reaction = 60",
            "max_reaction",
            &["bare number 60", "ns, us, ms or s"],
        ),
        (
            "max_data_age = \"1.5ms\"",
            "max_data_age",
            &["whole numbers", "1500us"],
        ),
        (
            "max_data_age = \"40 parsecs\"",
            "max_data_age",
            &["ns, us, ms or s"],
        ),
        (
            "max_reaction = true",
            "max_reaction",
            &["expected a duration string", "boolean"],
        ),
    ];
    for (line, key, phrases) in cases {
        let text = edit(&[("precedence = true", &format!("precedence = true\n{line}"))]);
        let e = expect_error(
            &text,
            line_of(&text, line, 0),
            &format!("chain.sense_to_act.{key}"),
            phrases,
        );
        let value_column = line.find('=').map_or(0, |i| i + 3);
        assert_eq!(e.column, value_column, "{line}: the column of the value");
    }

    // A misspelt key is unknown, with the allowed ones and the closest.
    let text = edit(&[(
        "precedence = true",
        "precedence = true\nmax_data_ages = \"40ms\"",
    )]);
    expect_error(
        &text,
        line_of(&text, "max_data_ages", 0),
        "chain.sense_to_act.max_data_ages",
        &[
            "unknown key `max_data_ages`",
            "did you mean `max_data_age`?",
            "precedence, max_data_age, max_reaction",
        ],
    );
}

#[test]
fn a_manifest_without_modes_is_refused() {
    let cut = GOOD.find("[[mode]]").expect("GOOD has modes");
    let text = GOOD[..cut].replace("update_safe_modes = [\"parked\"]\n", "");
    expect_error(&text, 1, "mode", &["no [[mode]] declared"]);
}

#[test]
fn exactly_one_mode_is_the_default() {
    let text = edit(&[("default = true\n", "")]);
    expect_error(
        &text,
        line_of(&text, "[[mode]]", 0),
        "mode.drive.default",
        &["no mode is marked default = true"],
    );

    let text = edit(&[("name = \"parked\"", "name = \"parked\"\ndefault = true")]);
    let first = line_of(&text, "[[mode]]", 0);
    expect_error(
        &text,
        line_of(&text, "default = true", 1),
        "mode.parked.default",
        &[
            "several modes are marked default = true",
            &format!("`drive` (line {first})"),
        ],
    );
}

#[test]
fn escalation_and_update_safe_modes_must_name_declared_modes() {
    let text = edit(&[("escalate:degraded", "escalate:limp")]);
    expect_error(
        &text,
        line_of(&text, "escalate:limp", 0),
        "task.perception.overrun",
        &["unknown mode `limp`", "`degraded`, `drive`, `parked`"],
    );

    let text = edit(&[(
        "update_safe_modes = [\"parked\"]",
        "update_safe_modes = [\"parkd\"]",
    )]);
    expect_error(
        &text,
        line_of(&text, "parkd", 0),
        "deployment.update_safe_modes",
        &["unknown mode `parkd`", "did you mean `parked`?"],
    );

    let text = edit(&[("overrun = \"skip-next\"", "overrun = \"restart\"")]);
    expect_error(
        &text,
        line_of(&text, "restart", 0),
        "task.camera.overrun",
        &[
            "not an overrun policy",
            "\"report\", \"skip-next\", \"escalate:<mode name>\"",
        ],
    );
}

#[test]
fn on_fault_defaults_to_report_and_escalates_to_a_declared_mode() {
    let d = parse(GOOD).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        d.tasks.iter().all(|t| t.on_fault == FaultPolicy::Report),
        "report is the default"
    );
    let text = edit(&[(
        "overrun = \"skip-next\"",
        "overrun = \"skip-next\"\non_fault = \" escalate: degraded \"",
    )]);
    let d = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let camera = d.tasks.iter().find(|t| t.name == "camera").expect("camera");
    let degraded = d
        .modes
        .iter()
        .position(|m| m.name == "degraded")
        .expect("mode");
    assert_eq!(camera.on_fault, FaultPolicy::Escalate(degraded));
    let text = edit(&[("overrun = \"report\"", "on_fault = \"report\"")]);
    let d = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert!(d.tasks.iter().all(|t| t.on_fault == FaultPolicy::Report));
}

#[test]
fn a_bad_on_fault_policy_is_refused_at_its_line() {
    // An unknown mode, with the declared ones listed.
    let text = edit(&[(
        "overrun = \"skip-next\"",
        "overrun = \"skip-next\"\non_fault = \"escalate:limp\"",
    )]);
    expect_error(
        &text,
        line_of(&text, "escalate:limp", 0),
        "task.camera.on_fault",
        &["unknown mode `limp`", "`degraded`, `drive`, `parked`"],
    );
    // `skip-next` is an overrun policy only: a fault gives no time back.
    let text = edit(&[(
        "overrun = \"skip-next\"",
        "overrun = \"skip-next\"\non_fault = \"skip-next\"",
    )]);
    expect_error(
        &text,
        line_of(&text, "on_fault", 0),
        "task.camera.on_fault",
        &[
            "\"skip-next\" is not a fault policy",
            "allowed: \"report\", \"escalate:<mode name>\"",
        ],
    );
    // `escalate:` without a mode.
    let text = edit(&[(
        "overrun = \"skip-next\"",
        "overrun = \"skip-next\"\non_fault = \"escalate:\"",
    )]);
    expect_error(
        &text,
        line_of(&text, "on_fault", 0),
        "task.camera.on_fault",
        &["`escalate:` needs the mode to switch to"],
    );
    // Not a string.
    let text = edit(&[(
        "overrun = \"skip-next\"",
        "overrun = \"skip-next\"\non_fault = 3",
    )]);
    expect_error(
        &text,
        line_of(&text, "on_fault", 0),
        "task.camera.on_fault",
        &["expected a string"],
    );
}

// ---------------------------------------------------------------------------------------
// Size limits.

#[test]
fn a_hyperperiod_above_the_limit_is_refused() {
    let text = edit(&[
        (
            "period = \"20ms\"\nbudget = \"3ms\"",
            "period = \"3s\"\nbudget = \"3ms\"",
        ),
        ("period = \"5ms\"", "period = \"7s\""),
    ]);
    expect_error(
        &text,
        line_of(&text, "\"7s\"", 0),
        "task.controller.period",
        &["hyperperiod", "would become 21s", "limit of 10s"],
    );
}

/// A manifest of `n` tasks `t0..`, each registered without ports, only `t0` in a mode.
fn many_tasks(n: usize) -> (String, Registry) {
    let mut r = Registry::new();
    let mut text = String::from(
        "[deployment]\nname = \"many\"\ncores = [0]\n\n[[app]]\nname = \"a\"\n\n[[mode]]\nname = \"m\"\ndefault = true\ntasks = [\"t0\"]\n",
    );
    for i in 0..n {
        r.task(&format!("t{i}"), Ports::new(), not_built);
        text.push_str(&format!(
            "\n[[task]]\nname = \"t{i}\"\napp = \"a\"\nperiod = \"10ms\"\nbudget = \"1us\"\ncore = 0\n"
        ));
    }
    (text, r)
}

#[test]
fn more_tasks_than_the_limit_are_refused() {
    let (text, r) = many_tasks(limits::MAX_TASKS);
    let ok = manifest::parse("many.toml", &text, r.catalog(), CORES);
    assert_eq!(
        ok.map(|d| d.tasks.len()).map_err(|e| e.to_string()),
        Ok(limits::MAX_TASKS)
    );

    let (text, r) = many_tasks(limits::MAX_TASKS + 1);
    let e = manifest::parse("many.toml", &text, r.catalog(), CORES).expect_err("too many tasks");
    assert_eq!(e.errors.len(), 1, "{e}");
    let last = format!("name = \"t{}\"", limits::MAX_TASKS);
    assert_eq!(e.errors[0].line, line_of(&text, &last, 0) - 1);
    assert_eq!(e.errors[0].field, format!("task.t{}", limits::MAX_TASKS));
    assert!(
        e.errors[0]
            .message
            .contains("4097 tasks, 1 more than the limit of 4096"),
        "{e}"
    );
}

/// A manifest of one task `t0` in app `a0`, with `modes` modes `m0..` and `apps` apps `a0..`.
fn many_modes_and_apps(modes: usize, apps: usize) -> (String, Registry) {
    let mut r = Registry::new();
    r.task("t0", Ports::new(), not_built);
    let mut text = String::from(
        "[deployment]\nname = \"many\"\ncores = [0]\n\n[[task]]\nname = \"t0\"\napp = \"a0\"\nperiod = \"10ms\"\nbudget = \"1us\"\ncore = 0\n",
    );
    for i in 0..apps {
        text.push_str(&format!("\n[[app]]\nname = \"a{i}\"\n"));
    }
    for i in 0..modes {
        let default = if i == 0 { "default = true\n" } else { "" };
        text.push_str(&format!(
            "\n[[mode]]\nname = \"m{i}\"\n{default}tasks = [\"t0\"]\n"
        ));
    }
    (text, r)
}

#[test]
fn more_modes_than_the_limit_are_refused_where_the_first_extra_one_is_declared() {
    // A mode is a bit of the update-safe mask and a byte of the dispatchers' packed cycle
    // word, where 254 means stop: a 255th mode must never reach them.
    let (text, r) = many_modes_and_apps(limits::MAX_MODES, 1);
    let ok = manifest::parse("many.toml", &text, r.catalog(), CORES);
    assert_eq!(
        ok.map(|d| d.modes.len()).map_err(|e| e.to_string()),
        Ok(limits::MAX_MODES)
    );
    for n in [limits::MAX_MODES + 1, 303] {
        let (text, r) = many_modes_and_apps(n, 1);
        let e =
            manifest::parse("many.toml", &text, r.catalog(), CORES).expect_err("too many modes");
        assert_eq!(e.errors.len(), 1, "{e}");
        let first_extra = format!("name = \"m{}\"", limits::MAX_MODES);
        assert_eq!(e.errors[0].line, line_of(&text, &first_extra, 0) - 1);
        assert_eq!(e.errors[0].field, format!("mode.m{}", limits::MAX_MODES));
        let want = format!("{n} modes, {} more than the limit of 64 modes", n - 64);
        assert!(e.errors[0].message.contains(&want), "{e}");
    }
}

#[test]
fn more_apps_than_the_limit_are_refused() {
    let (text, r) = many_modes_and_apps(1, limits::MAX_APPS);
    assert!(manifest::parse("many.toml", &text, r.catalog(), CORES).is_ok());
    let (text, r) = many_modes_and_apps(1, limits::MAX_APPS + 1);
    let e = manifest::parse("many.toml", &text, r.catalog(), CORES).expect_err("too many apps");
    assert_eq!(e.errors.len(), 1, "{e}");
    assert_eq!(e.errors[0].field, format!("app.a{}", limits::MAX_APPS));
    assert!(
        e.errors[0]
            .message
            .contains("65 apps, 1 more than the limit of 64 apps"),
        "{e}"
    );
}

fn jobs_manifest(slow_core: usize) -> String {
    format!(
        "[deployment]\nname = \"jobs\"\ncores = [0, 1]\n\n[[app]]\nname = \"a\"\n\n\
         [[task]]\nname = \"tick_a\"\napp = \"a\"\nperiod = \"100us\"\nbudget = \"1us\"\ncore = 0\n\n\
         [[task]]\nname = \"slow\"\napp = \"a\"\nperiod = \"10s\"\nbudget = \"1us\"\ncore = {slow_core}\n\n\
         [[mode]]\nname = \"m\"\ndefault = true\ntasks = [\"tick_a\", \"slow\"]\n"
    )
}

#[test]
fn more_jobs_per_hyperperiod_on_one_core_than_the_limit_are_refused() {
    // 10 s / 100 us = 100 000 jobs: exactly the limit when `slow` runs elsewhere.
    let ok = parse(&jobs_manifest(1))
        .map(|d| d.hyperperiod_ns)
        .map_err(|e| e.to_string());
    assert_eq!(ok, Ok(10_000_000_000));

    let text = jobs_manifest(0);
    expect_error(
        &text,
        line_of(&text, "tasks = [\"tick_a\"", 0),
        "mode.m.tasks",
        &["core 0 would hold 100001 jobs per hyperperiod (10s), 1 more than the limit of 100000"],
    );
}

// ---------------------------------------------------------------------------------------
// One pass.

#[test]
fn every_error_is_reported_in_one_pass_in_file_order() {
    let text = edit(&[
        ("priority = 70", "priority = 0"),
        ("budget = \"500us\"", "budget = \"500us\"\nbugdet = \"1ms\""),
        ("budget = \"3ms\"", "budget = \"0ms\""),
        ("type = \"Command\"", "type = \"Comand\""),
        (
            "tasks = [\"camera\", \"perception\"]",
            "tasks = [\"camera\", \"planner\"]",
        ),
        ("name = \"parked\"", "name = \"parked\"\ndefault = true"),
    ]);
    let all = errors(&text);
    let expected = [
        (line_of(&text, "priority", 0), "deployment.priority"),
        (line_of(&text, "bugdet", 0), "task.radar.bugdet"),
        (line_of(&text, "\"0ms\"", 0), "task.planner.budget"),
        (line_of(&text, "Comand", 0), "channel.command.type"),
        (
            line_of(&text, "tasks = [\"camera\", \"planner\"]", 0),
            "chain.camera_path.tasks",
        ),
        (line_of(&text, "default = true", 1), "mode.parked.default"),
    ];
    let got: Vec<(usize, &str)> = all.iter().map(|e| (e.line, e.field.as_str())).collect();
    for want in &expected {
        assert!(
            got.contains(want),
            "missing {want:?} in:\n{}",
            ManifestLoadError {
                errors: all.clone()
            }
        );
    }
    let mut sorted = got.clone();
    sorted.sort_by_key(|(line, _)| *line);
    assert_eq!(got, sorted, "errors come in file order");

    let shown = ManifestLoadError {
        errors: all.clone(),
    }
    .to_string();
    assert_eq!(shown.lines().count(), all.len(), "one error per line");
    let e = &all[0];
    assert_eq!(
        shown.lines().next(),
        Some(
            format!(
                "test.toml:{}:{}: {}: {}",
                e.line, e.column, e.field, e.message
            )
            .as_str()
        )
    );
}

// ---------------------------------------------------------------------------------------
// The [ota] table.

/// The hex public key of the signing key made from seed `[n; 32]`.
fn key_hex(n: u8) -> String {
    takt::ota::to_hex(&takt::ota::bundle::public_key(&[n; 32]))
}

/// `GOOD` with an `[ota]` table of `body` appended.
fn with_ota(body: &str) -> String {
    format!("{GOOD}\n[ota]\n{body}")
}

#[test]
fn without_an_ota_table_the_defaults_hold() {
    let d = parse(GOOD).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.ota, OtaSpec::default());
    assert!(d.ota.trusted_keys.is_empty());
    assert_eq!(d.ota.probation, Probation::Hyperperiods(25));
    assert_eq!(d.ota.state_dir, None);
    let d = parse(&with_ota("")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        d.ota,
        OtaSpec::default(),
        "an empty [ota] table is all defaults"
    );
}

#[test]
fn a_good_ota_table_yields_its_keys_probation_and_state_dir() {
    let (k1, k2) = (key_hex(1), key_hex(2));
    let text = with_ota(&format!(
        "trusted_keys = [\n  \"{k1}\",\n  \"{}\",\n]\nprobation = \"50ms\"\nstate_dir = \"state/acc\"\n",
        k2.to_uppercase()
    ));
    let d = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        d.ota.trusted_keys,
        [
            takt::ota::bundle::public_key(&[1; 32]),
            takt::ota::bundle::public_key(&[2; 32])
        ],
        "manifest order, upper-case hex accepted"
    );
    assert_eq!(d.ota.probation, Probation::Duration { ns: 50 * MS });
    // The source is `test.toml`, with no directory: the relative path stays as written.
    assert_eq!(d.ota.state_dir, Some(PathBuf::from("state/acc")));
    // 50 ms over a 20 ms hyperperiod: 2.5 rounds up to 3.
    assert_eq!(d.ota.probation.hyperperiods(d.hyperperiod_ns), 3);

    // Every key the manifest accepts, the bundle reader accepts too.
    let mut trusted = takt::ota::bundle::TrustedKeys::new();
    for k in &d.ota.trusted_keys {
        trusted.add(k).unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(trusted.len(), 2);

    let d = parse(&with_ota(
        "probation_hyperperiods = 40\nstate_dir = \"/var/lib/takt\"\n",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.ota.probation, Probation::Hyperperiods(40));
    assert_eq!(d.ota.state_dir, Some(PathBuf::from("/var/lib/takt")));
}

#[test]
fn a_relative_state_dir_is_taken_from_the_manifests_directory() {
    let dir = std::env::temp_dir().join(format!("takt-rules-{}-ota", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let path = dir.join("acc.toml");
    std::fs::write(&path, with_ota("state_dir = \"state\"\n")).expect("write temp manifest");
    let d = manifest::load(&path, registry().catalog(), CORES);
    let _ = std::fs::remove_dir_all(&dir);
    let d = d.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.ota.state_dir, Some(dir.join("state")));
}

#[test]
fn probation_rounds_up_to_whole_hyperperiods_and_is_at_least_one() {
    let h = 20 * MS;
    assert_eq!(
        Probation::Duration { ns: 40 * MS }.hyperperiods(h),
        2,
        "exact"
    );
    assert_eq!(Probation::Duration { ns: 40 * MS + 1 }.hyperperiods(h), 3);
    assert_eq!(Probation::Duration { ns: 1 }.hyperperiods(h), 1);
    assert_eq!(Probation::Duration { ns: 1_000 * MS }.hyperperiods(h), 50);
    assert_eq!(Probation::Duration { ns: 0 }.hyperperiods(h), 1);
    assert_eq!(Probation::Hyperperiods(7).hyperperiods(h), 7);
    assert_eq!(Probation::Hyperperiods(0).hyperperiods(h), 1);
    assert_eq!(Probation::default().hyperperiods(h), 25);
    // No validated deployment has a zero hyperperiod; the method must not divide by it.
    assert_eq!(Probation::Duration { ns: 5 }.hyperperiods(0), 5);
    assert_eq!(
        Probation::Duration { ns: u64::MAX }.hyperperiods(2),
        u64::MAX / 2 + 1
    );
}

#[test]
fn a_trusted_key_that_is_not_hex_is_refused() {
    let bad = format!("{}zz", &key_hex(1)[..62]);
    let text = with_ota(&format!(
        "trusted_keys = [\n  \"{}\",\n  \"{bad}\",\n]\n",
        key_hex(1)
    ));
    expect_error(
        &text,
        line_of(&text, &bad, 0),
        "ota.trusted_keys[1]",
        &[
            "is not hex",
            "character 63 is 'z'",
            "64 hex digits (32 bytes)",
        ],
    );
    assert_eq!(
        errors(&text).len(),
        1,
        "only the bad key: {:?}",
        errors(&text)
    );
}

#[test]
fn a_trusted_key_of_the_wrong_length_is_refused() {
    let short = &key_hex(1)[..62];
    let text = with_ota(&format!("trusted_keys = [\"{short}\"]\n"));
    expect_error(
        &text,
        line_of(&text, "trusted_keys", 0),
        "ota.trusted_keys[0]",
        &["the key has 62 hex digits, not 64", "32 bytes"],
    );
    let long = format!("{}00", key_hex(1));
    let text = with_ota(&format!("trusted_keys = [\"{long}\"]\n"));
    expect_error(
        &text,
        line_of(&text, "trusted_keys", 0),
        "ota.trusted_keys[0]",
        &["the key has 66 hex digits, not 64"],
    );
}

#[test]
fn a_trusted_key_that_is_not_a_curve_point_is_refused() {
    // About half of all 32-byte strings are not the encoding of a curve point; the first
    // repeated byte that is not is found here, so the test does not depend on a constant.
    let bytes = (0..=u8::MAX)
        .map(|n| [n; 32])
        .find(|b| ed25519_dalek::VerifyingKey::from_bytes(b).is_err())
        .expect("some repeated byte is not a curve point");
    let hex = takt::ota::to_hex(&bytes);
    let text = with_ota(&format!("trusted_keys = [\"{hex}\"]\n"));
    expect_error(
        &text,
        line_of(&text, "trusted_keys", 0),
        "ota.trusted_keys[0]",
        &["is 64 hex digits but not an ed25519 public key", &hex],
    );
}

#[test]
fn a_weak_trusted_key_is_refused() {
    // All zeros decodes to a point of order 4: a valid encoding, but signatures under it
    // can be forged, so it must never be trusted.
    let zeros = "0".repeat(64);
    assert!(ed25519_dalek::VerifyingKey::from_bytes(&[0; 32]).is_ok_and(|k| k.is_weak()));
    let text = with_ota(&format!("trusted_keys = [\"{zeros}\"]\n"));
    expect_error(
        &text,
        line_of(&text, "trusted_keys", 0),
        "ota.trusted_keys[0]",
        &["is a weak ed25519 key", "can be forged"],
    );
}

#[test]
fn a_trusted_key_listed_twice_is_refused_naming_both_entries() {
    let (k1, k2) = (key_hex(1), key_hex(2));
    // A bad entry first: the duplicate is still named by its index in the manifest.
    let text = with_ota(&format!(
        "trusted_keys = [\n  \"nothex\",\n  \"{k1}\",\n  \"{k2}\",\n  \"{}\",\n]\n",
        k1.to_uppercase()
    ));
    let first = line_of(&text, &k1, 0);
    expect_error(
        &text,
        line_of(&text, &k1.to_uppercase(), 0),
        "ota.trusted_keys[3]",
        &[
            "listed twice",
            &format!("also ota.trusted_keys[1] (line {first})"),
        ],
    );
    expect_error(
        &text,
        line_of(&text, "nothex", 0),
        "ota.trusted_keys[0]",
        &["is not hex"],
    );
    assert_eq!(errors(&text).len(), 2, "{:?}", errors(&text));
}

#[test]
fn both_probation_forms_are_refused_naming_both() {
    let text = with_ota("probation = \"1s\"\nprobation_hyperperiods = 10\n");
    let first = line_of(&text, "probation = ", 0);
    expect_error(
        &text,
        line_of(&text, "probation_hyperperiods", 0),
        "ota.probation_hyperperiods",
        &[
            "both `probation` and `probation_hyperperiods` are given",
            &format!("(`probation` on line {first})"),
            "give one",
        ],
    );
    assert_eq!(errors(&text).len(), 1, "{:?}", errors(&text));

    // Whichever comes second is the one reported.
    let text = with_ota("probation_hyperperiods = 10\nprobation = \"1s\"\n");
    expect_error(
        &text,
        line_of(&text, "probation = ", 0),
        "ota.probation",
        &["(`probation_hyperperiods` on line"],
    );
}

#[test]
fn a_zero_or_oversized_probation_is_refused() {
    let text = with_ota("probation = \"0s\"\n");
    expect_error(
        &text,
        line_of(&text, "probation", 0),
        "ota.probation",
        &["the probation window is zero", "at most 3600s (1 hour)"],
    );
    let text = with_ota("probation = \"3601s\"\n");
    expect_error(
        &text,
        line_of(&text, "probation", 0),
        "ota.probation",
        &["3601s is longer than the limit", "at most 3600s"],
    );
    // The limit itself is allowed.
    let d = parse(&with_ota("probation = \"3600s\"\n")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        d.ota.probation,
        Probation::Duration {
            ns: limits::MAX_PROBATION_NS
        }
    );
    let text = with_ota("probation = 5\n");
    expect_error(
        &text,
        line_of(&text, "probation", 0),
        "ota.probation",
        &["bare number 5", "ns, us, ms or s"],
    );

    for bad in ["0", "100001", "-3"] {
        let text = with_ota(&format!("probation_hyperperiods = {bad}\n"));
        expect_error(
            &text,
            line_of(&text, "probation_hyperperiods", 0),
            "ota.probation_hyperperiods",
            &[
                &format!("probation_hyperperiods {bad} is out of range"),
                "allowed: 1..=100000",
            ],
        );
    }
    let d = parse(&with_ota("probation_hyperperiods = 100000\n")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.ota.probation, Probation::Hyperperiods(100_000));
}

#[test]
fn an_unknown_key_in_ota_is_named_with_the_allowed_ones() {
    let text = with_ota("trusted_key = []\n");
    let e = expect_error(
        &text,
        line_of(&text, "trusted_key", 0),
        "ota.trusted_key",
        &[
            "unknown key `trusted_key` in [ota]",
            "did you mean `trusted_keys`?",
            "allowed keys here: trusted_keys, probation, probation_hyperperiods, state_dir",
        ],
    );
    assert_eq!(e.column, 1);
}

#[test]
fn a_bad_state_dir_is_refused() {
    let text = with_ota("state_dir = \"  \"\n");
    expect_error(
        &text,
        line_of(&text, "state_dir", 0),
        "ota.state_dir",
        &["the state directory is empty", "give a directory path"],
    );
    let text = with_ota("state_dir = \"a\\u0000b\"\n");
    expect_error(
        &text,
        line_of(&text, "state_dir", 0),
        "ota.state_dir",
        &["contains a NUL character"],
    );
    let text = with_ota("state_dir = 5\n");
    expect_error(
        &text,
        line_of(&text, "state_dir", 0),
        "ota.state_dir",
        &["expected a string", "found integer 5"],
    );
}

#[test]
fn ota_values_of_the_wrong_type_say_what_was_expected() {
    let text = with_ota("trusted_keys = \"abc\"\n");
    expect_error(
        &text,
        line_of(&text, "trusted_keys", 0),
        "ota.trusted_keys",
        &["expected an array of ed25519 public keys", "found string"],
    );
    let text = with_ota(&format!("trusted_keys = [1, \"{}\"]\n", key_hex(1)));
    expect_error(
        &text,
        line_of(&text, "trusted_keys", 0),
        "ota.trusted_keys[0]",
        &["expected a string", "found integer 1"],
    );
    // A top-level key must come before the first table header.
    let text = format!("ota = 5\n{GOOD}");
    expect_error(
        &text,
        line_of(&text, "ota = 5", 0),
        "ota",
        &["expected a table: write [ota]"],
    );
    let text = format!("{GOOD}\n[[ota]]\nprobation = \"1s\"\n");
    expect_error(
        &text,
        line_of(&text, "[[ota]]", 0),
        "ota",
        &["expected a table: write [ota]"],
    );
}

// ---------------------------------------------------------------------------------------
// Declared parameters: types, defaults and ranges from the implementation's catalog.

fn param_registry() -> Registry {
    use takt::task::Param;
    let mut r = Registry::new();
    r.task(
        "filter",
        Ports::new()
            .param("gain", Param::float(1.0).range(0.0, 10.0))
            .param("window", Param::int(3).range(1.0, 100.0))
            .param("side", Param::string("left"))
            .param("enabled", Param::bool(true))
            .param("taps", Param::floats().range(-1.0, 1.0)),
        not_built,
    );
    r
}

fn param_manifest(params: &str) -> String {
    format!(
        "[deployment]\nname = \"p\"\ncores = [0]\n\n[[app]]\nname = \"a\"\n\n[[task]]\nname = \"filter\"\napp = \"a\"\nperiod = \"10ms\"\nbudget = \"1ms\"\ncore = 0\n[task.params]\n{params}\n\n[[mode]]\nname = \"m\"\ndefault = true\ntasks = [\"filter\"]\n"
    )
}

fn param_errors(params: &str) -> Vec<ManifestError> {
    let text = param_manifest(params);
    match manifest::parse("params.toml", &text, param_registry().catalog(), CORES) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.errors,
    }
}

#[test]
fn declared_parameters_of_every_toml_type_are_accepted_and_passed_on() {
    let text = param_manifest(
        "gain = 2.5\nwindow = 7\nside = \"right\"\nenabled = false\ntaps = [0.5, -0.25, 1]",
    );
    let d = manifest::parse("params.toml", &text, param_registry().catalog(), CORES)
        .unwrap_or_else(|e| panic!("{e}"));
    let p = &d.tasks[0].params;
    assert_eq!(p["gain"], ParamValue::Float("2.5".into()));
    assert_eq!(p["window"], ParamValue::Int(7));
    assert_eq!(p["side"], ParamValue::Str("right".into()));
    assert_eq!(p["enabled"], ParamValue::Bool(false));
    assert_eq!(
        p["taps"],
        ParamValue::Array(vec![
            ParamValue::Float("0.5".into()),
            ParamValue::Float("-0.25".into()),
            ParamValue::Int(1)
        ])
    );
}

#[test]
fn a_parameter_of_the_wrong_type_is_refused_at_its_line() {
    for (params, phrase) in [
        (
            "gain = \"fast\"\ntaps = [0.0]",
            "declared as a float, found a string",
        ),
        (
            "window = 2.5\ntaps = [0.0]",
            "declared as an integer, found a float",
        ),
        (
            "enabled = 1\ntaps = [0.0]",
            "declared as a boolean, found an integer",
        ),
        (
            "taps = 0.5",
            "declared as an array of floats, found a float",
        ),
        (
            "taps = [\"a\"]",
            "declared as an array of floats, found an array of strings",
        ),
    ] {
        let errors = param_errors(params);
        assert_eq!(errors.len(), 1, "{params}: {errors:?}");
        let e = &errors[0];
        let first = params.lines().next().expect("a line");
        let key = first.split(' ').next().expect("a key");
        assert_eq!(e.field, format!("task.filter.params.{key}"), "{params}");
        assert_eq!(
            e.line,
            line_of(&param_manifest(params), first, 0),
            "{params}"
        );
        assert!(e.message.contains(phrase), "{params}: {}", e.message);
    }
}

#[test]
fn a_parameter_out_of_its_declared_range_is_refused_with_the_range() {
    for (params, phrase) in [
        (
            "gain = 12.5\ntaps = [0.0]",
            "`gain` = 12.5 is outside the allowed range 0..=10",
        ),
        (
            "window = 0\ntaps = [0.0]",
            "`window` = 0 is outside the allowed range 1..=100",
        ),
        (
            "taps = [0.5, 2.0]",
            "`taps` = 2 is outside the allowed range -1..=1",
        ),
    ] {
        let errors = param_errors(params);
        assert_eq!(errors.len(), 1, "{params}: {errors:?}");
        assert!(
            errors[0].message.contains(phrase),
            "{params}: {}",
            errors[0].message
        );
    }
}

#[test]
fn unknown_and_missing_parameters_and_mixed_arrays_are_refused() {
    let errors = param_errors("gian = 2.0\ntaps = [0.0]");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].message.contains("declares no parameter `gian`"),
        "{}",
        errors[0].message
    );
    assert!(
        errors[0].message.contains("did you mean `gain`"),
        "{}",
        errors[0].message
    );

    let errors = param_errors("gain = 2.0");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field, "task.filter.params");
    assert!(
        errors[0]
            .message
            .contains("parameter `taps` (array of floats) is required"),
        "{}",
        errors[0].message
    );

    let errors = param_errors("taps = [0.5, \"x\"]");
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("mixes element types")),
        "{errors:?}"
    );
}

// --- [ota] key scopes and root keys (#12.12) --------------------------------------------

#[test]
fn scoped_signing_keys_and_root_keys_are_read() {
    let text = with_ota(&format!(
        "trusted_keys = [\"{}\"]\nroot_keys = [\"{}\"]\n\n[[ota.key]]\npublic = \"{}\"\napps = [\"{}\"]\n\n[[ota.key]]\npublic = \"{}\"\n",
        key_hex(1),
        key_hex(9),
        key_hex(2),
        first_app(),
        key_hex(3)
    ));
    let d = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        d.ota.trusted_keys,
        [takt::ota::bundle::public_key(&[1; 32])]
    );
    assert_eq!(d.ota.root_keys, [takt::ota::bundle::public_key(&[9; 32])]);
    assert_eq!(
        d.ota.scoped_keys,
        [
            (
                takt::ota::bundle::public_key(&[2; 32]),
                Some(vec![first_app()])
            ),
            (takt::ota::bundle::public_key(&[3; 32]), None),
        ]
    );
}

#[test]
fn a_scoped_key_naming_an_unknown_app_or_listed_twice_is_refused() {
    let text = with_ota(&format!(
        "trusted_keys = [\"{}\"]\n\n[[ota.key]]\npublic = \"{}\"\napps = [\"nosuch\"]\n",
        key_hex(1),
        key_hex(2)
    ));
    expect_error(
        &text,
        line_of(&text, "nosuch", 0),
        "ota.key[0].apps[0]",
        &["no app `nosuch`", "the apps are"],
    );
    let text = with_ota(&format!(
        "trusted_keys = [\"{}\"]\n\n[[ota.key]]\npublic = \"{}\"\n",
        key_hex(1),
        key_hex(1)
    ));
    expect_error(
        &text,
        line_of(&text, "public", 0),
        "ota.key[0].public",
        &["listed twice"],
    );
    let text = with_ota(&format!(
        "trusted_keys = [\"{}\"]\nroot_keys = [\"{}\"]\n",
        key_hex(1),
        key_hex(1)
    ));
    expect_error(
        &text,
        line_of(&text, "root_keys", 0),
        "ota.root_keys[0]",
        &["root key signs key documents only"],
    );
    let text = with_ota("[[ota.key]]\napps = [\"x\"]\nsecret = 1\n");
    let all = errors(&text);
    assert!(
        all.iter()
            .any(|e| e.field == "ota.key[0].public" && e.message.contains("missing required key")),
        "{all:?}"
    );
    assert!(
        all.iter()
            .any(|e| e.field == "ota.key[0].secret" && e.message.contains("unknown key")),
        "{all:?}"
    );
    let text = with_ota("[[ota.key]]\npublic = \"abc\"\n");
    expect_error(
        &text,
        line_of(&text, "abc", 0),
        "ota.key[0].public",
        &["64 hex digits"],
    );
}

/// The name of the first `[[app]]` of `GOOD`.
fn first_app() -> String {
    let d = parse(GOOD).unwrap_or_else(|e| panic!("{e}"));
    d.apps[0].name.clone()
}
#[test]
fn probation_thresholds_are_read_defaulted_and_bounded() {
    let d = parse(&with_ota("")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.ota.limits, takt::manifest::ProbationLimits::default());
    assert_eq!(d.ota.limits.max_overruns, 0);
    assert_eq!(d.ota.limits.max_faults, 0, "no fault is allowed by default");
    assert_eq!(d.ota.limits.exec_p99_max_percent, 200);
    assert_eq!(
        d.ota.limits.heartbeat_timeout_ns(20 * MS),
        200 * MS,
        "three hyperperiods, at least 200 ms"
    );
    let d = parse(&with_ota(
        "probation_max_overruns = 2\nprobation_max_faults = 3\nprobation_exec_p99_max_percent = 150\nprobation_heartbeat_timeout = \"500ms\"\n",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.ota.limits.max_overruns, 2);
    assert_eq!(d.ota.limits.max_faults, 3);
    assert_eq!(d.ota.limits.exec_p99_max_percent, 150);
    assert_eq!(d.ota.limits.heartbeat_timeout_ns(20 * MS), 500 * MS);

    let text = with_ota("probation_exec_p99_max_percent = 50\n");
    expect_error(
        &text,
        line_of(&text, "probation_exec_p99_max_percent", 0),
        "ota.probation_exec_p99_max_percent",
        &["probation_exec_p99_max_percent 50 is out of range; allowed: 100..=10000"],
    );
    let text = with_ota("probation_max_overruns = -1\n");
    expect_error(
        &text,
        line_of(&text, "probation_max_overruns", 0),
        "ota.probation_max_overruns",
        &["out of range; allowed: 0..=1000000"],
    );
    let text = with_ota("probation_max_faults = 1000001\n");
    expect_error(
        &text,
        line_of(&text, "probation_max_faults", 0),
        "ota.probation_max_faults",
        &["out of range; allowed: 0..=1000000"],
    );
    let text = with_ota("probation_max_faults = \"1\"\n");
    expect_error(
        &text,
        line_of(&text, "probation_max_faults", 0),
        "ota.probation_max_faults",
        &["expected an integer"],
    );
    let text = with_ota("probation_heartbeat_timeout = \"1ms\"\n");
    expect_error(
        &text,
        line_of(&text, "probation_heartbeat_timeout", 0),
        "ota.probation_heartbeat_timeout",
        &[
            "the heartbeat timeout 1ms is out of range",
            "e.g. probation_heartbeat_timeout = \"500ms\"",
        ],
    );
}

#[test]
fn wake_is_sleep_by_default_spin_with_a_margin_and_per_core_overrides() {
    use takt::manifest::Wake;
    let d = parse(GOOD).expect("good manifest");
    assert_eq!(d.wake.for_core(0), Wake::Sleep);
    let text = edit(&[
        (
            "priority = 70\n",
            "priority = 70\nwake = { spin = \"80us\" }\n",
        ),
        (
            "update_safe_modes = [\"parked\"]\n",
            "update_safe_modes = [\"parked\"]\n[deployment.wake_by_core]\n1 = \"sleep\"\n",
        ),
    ]);
    let d = parse(&text).expect("spin on core 0, sleep on core 1");
    assert_eq!(d.wake.for_core(0), Wake::Spin { margin_ns: 80 * US });
    assert_eq!(d.wake.for_core(1), Wake::Sleep);
    let text = edit(&[("priority = 70\n", "priority = 70\nwake = \"sleep\"\n")]);
    assert_eq!(
        parse(&text).expect("explicit sleep").wake.for_core(1),
        Wake::Sleep
    );
}

#[test]
fn wake_choices_out_of_range_or_misspelt_are_refused_with_what_is_allowed() {
    for (value, field, phrases) in [
        (
            "\"spin\"",
            "deployment.wake",
            &["\"spin\" is not a wake choice", "allowed: \"sleep\""][..],
        ),
        (
            "{ spin = \"0us\" }",
            "deployment.wake.spin",
            &["0ns is out of range", "1us to 1ms"][..],
        ),
        (
            "{ spin = \"2ms\" }",
            "deployment.wake.spin",
            &["2ms is out of range"][..],
        ),
        (
            "{ spin = 80 }",
            "deployment.wake.spin",
            &["bare number 80"][..],
        ),
        (
            "{ spin = \"80us\", sleep = true }",
            "deployment.wake",
            &["exactly one key, `spin`", "`sleep`"][..],
        ),
        (
            "{}",
            "deployment.wake",
            &["exactly one key, `spin`; found none"][..],
        ),
        (
            "3",
            "deployment.wake",
            &["expected \"sleep\" or a table"][..],
        ),
    ] {
        let text = edit(&[(
            "priority = 70\n",
            &format!("priority = 70\nwake = {value}\n"),
        )]);
        expect_error(&text, line_of(&text, "wake", 0), field, phrases);
    }
    // An override for a core the deployment does not use, and a key that is no number.
    let text = edit(&[(
        "update_safe_modes = [\"parked\"]\n",
        "update_safe_modes = [\"parked\"]\n[deployment.wake_by_core]\n3 = \"sleep\"\n",
    )]);
    expect_error(
        &text,
        line_of(&text, "3 = ", 0),
        "deployment.wake_by_core.3",
        &["core 3 is not one of the deployment's cores [0, 1]"],
    );
    let text = edit(&[(
        "update_safe_modes = [\"parked\"]\n",
        "update_safe_modes = [\"parked\"]\n[deployment.wake_by_core]\nfirst = \"sleep\"\n",
    )]);
    expect_error(
        &text,
        line_of(&text, "first", 0),
        "deployment.wake_by_core.first",
        &["\"first\" is not a core number"],
    );
}

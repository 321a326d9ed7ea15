//! The supervision keys of `[[app]]` (restart policy, restart limit, escalation), in the
//! style of `manifest_rules.rs`: one broken manifest per rule, each asserting the error's
//! line, field and a key phrase of what it says.

use takt::manifest::{
    self, Deployment, Escalation, ManifestError, ManifestLoadError, RestartPolicy, Supervision,
};
use takt::task::{Ports, Registry, Task, TaskBuildError, TaskBuilder};

const BASE: &str = r#"
[deployment]
name = "sup-test"
cores = [0]
priority = 50

[[app]]
name = "main"
#SUPERVISION

[[task]]
name = "tick"
app = "main"
period = "10ms"
budget = "1ms"
core = 0

[[mode]]
name = "drive"
default = true
tasks = ["tick"]

[[mode]]
name = "degraded"
tasks = []
"#;

fn not_built(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    Err(b.fail("manifest tests never construct tasks"))
}

fn parse(keys: &str) -> Result<Deployment, ManifestLoadError> {
    let mut r = Registry::new();
    r.task("tick", Ports::new(), not_built);
    let text = BASE.replace("#SUPERVISION", keys);
    manifest::parse("test.toml", &text, r.catalog(), 4)
}

fn supervision(keys: &str) -> Supervision {
    match parse(keys) {
        Ok(d) => d.apps[0].supervision,
        Err(e) => panic!("refused:\n{e}"),
    }
}

/// The line `BASE` puts the supervision keys on (the first when there are several).
fn keys_line() -> usize {
    BASE.lines()
        .position(|l| l == "#SUPERVISION")
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("the placeholder is in BASE"))
}

fn expect_error(keys: &str, line: usize, field: &str, phrases: &[&str]) -> ManifestError {
    let all = match parse(keys) {
        Ok(_) => panic!("accepted, but it breaks a rule: {keys}"),
        Err(e) => e.errors,
    };
    match all.iter().find(|e| {
        e.line == line && e.field == field && phrases.iter().all(|p| e.message.contains(p))
    }) {
        Some(e) => e.clone(),
        None => panic!(
            "no error on line {line} for `{field}` saying {phrases:?}; got:\n{}",
            ManifestLoadError { errors: all }
        ),
    }
}

#[test]
fn omitted_supervision_keys_take_their_defaults() {
    assert_eq!(supervision(""), Supervision::default());
    assert_eq!(
        Supervision::default(),
        Supervision {
            restart: RestartPolicy::OnFailure,
            max_restarts: 3,
            restart_window_ns: 60_000_000_000,
            escalate: Escalation::Stop,
        }
    );
}

#[test]
fn every_supervision_key_is_read() {
    let s = supervision(
        "restart = \"always\"\nmax_restarts = 5\nrestart_window = \"10s\"\nescalate = \"mode:degraded\"",
    );
    assert_eq!(
        s,
        Supervision {
            restart: RestartPolicy::Always,
            max_restarts: 5,
            restart_window_ns: 10_000_000_000,
            escalate: Escalation::Mode(1),
        }
    );
    assert_eq!(
        supervision("restart = \"never\"").restart,
        RestartPolicy::Never
    );
    assert_eq!(
        supervision("restart = \"on-failure\"\nescalate = \"stop\"").escalate,
        Escalation::Stop
    );
}

#[test]
fn an_unknown_restart_policy_lists_the_allowed_ones() {
    expect_error(
        "restart = \"sometimes\"",
        keys_line(),
        "app.main.restart",
        &["not a restart policy", "never", "on-failure", "always"],
    );
}

#[test]
fn max_restarts_must_be_a_bounded_count() {
    for bad in ["-1", "1001"] {
        expect_error(
            &format!("max_restarts = {bad}"),
            keys_line(),
            "app.main.max_restarts",
            &["out of range", "0 to 1000"],
        );
    }
    expect_error(
        "max_restarts = \"3\"",
        keys_line(),
        "app.main.max_restarts",
        &["expected an integer"],
    );
}

#[test]
fn a_zero_restart_window_is_refused() {
    expect_error(
        "restart_window = \"0s\"",
        keys_line(),
        "app.main.restart_window",
        &["zero", "positive duration"],
    );
}

#[test]
fn an_escalation_names_stop_or_a_declared_mode() {
    expect_error(
        "escalate = \"explode\"",
        keys_line(),
        "app.main.escalate",
        &["not an escalation", "stop", "mode:<mode name>"],
    );
    expect_error(
        "escalate = \"mode:warp\"",
        keys_line(),
        "app.main.escalate",
        &["unknown mode `warp`", "degraded"],
    );
}

//! TOML text → raw manifest: every section and value with the byte offset it was written at.
//!
//! Owns: the manifest's shape. It checks TOML syntax, which keys may appear where, which
//! keys are required, the type of every value, and rules a single value can be checked
//! against on its own (name charset, duration syntax, priority range, overrun policy
//! syntax). It must never resolve a name against another section or the catalog: that is
//! `validate`'s job, so each rule lives in exactly one place. It never stops at the first
//! problem: a bad value is reported and left out, and checking goes on.

use std::collections::BTreeMap;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::model::{limits, ParamValue, RestartPolicy, Wake};
use super::source::Diagnostics;
use crate::time::{format_ns, parse_duration_ns};

/// A value and the byte offset where the manifest wrote it (or, for a default, where the
/// table that omitted it starts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct At<T> {
    pub value: T,
    pub at: usize,
}

/// An optional key whose default depends on other keys (a task's `let` defaults to its
/// period), so "absent" and "present but wrong" must stay apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Optional<T> {
    Absent,
    /// Present but unusable; the error is already reported.
    Invalid,
    Given(At<T>),
}

impl<T> Optional<T> {
    /// The value, or `default` placed at `at` when absent; `None` when invalid.
    fn or_default(self, default: T, at: usize) -> Option<At<T>> {
        match self {
            Optional::Absent => Some(At { value: default, at }),
            Optional::Invalid => None,
            Optional::Given(v) => Some(v),
        }
    }
}

/// What the `overrun` key says, before the mode name of `escalate:` is resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum RawOverrun {
    Report,
    SkipNext,
    Escalate(String),
}

/// What the `on_fault` key says, before the mode name of `escalate:` is resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum RawFault {
    Report,
    Escalate(String),
}

/// `[deployment]`. `None` fields are missing or invalid (already reported).
pub(super) struct RawDeployment {
    pub name: Option<At<String>>,
    pub cores: Option<At<Vec<At<u64>>>>,
    pub priority: Option<At<u8>>,
    pub update_safe_modes: Option<At<Vec<At<String>>>>,
    /// `wake`: `Some` when valid or absent (then sleep).
    pub wake: Option<At<Wake>>,
    /// `[deployment.wake_by_core]`: core number (as written) to its choice.
    pub wake_by_core: Vec<(At<u64>, At<Wake>)>,
}

/// Fields every named section shares: where its table starts and how errors name it.
pub(super) struct Section {
    /// Byte offset of the table header (`[[task]]`), or of the inline table.
    pub at: usize,
    /// `task.radar` when the name is usable, `task[3]` (0-based) otherwise.
    pub path: String,
}

impl Section {
    pub(super) fn field(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }
}

pub(super) struct RawApp {
    pub section: Section,
    pub name: Option<At<String>>,
    pub executable: Option<At<Option<String>>>,
    // Supervision (lifecycle manager); `None`: invalid, already reported.
    pub restart: Option<At<RestartPolicy>>,
    pub max_restarts: Option<At<u32>>,
    pub restart_window_ns: Option<At<u64>>,
    pub escalate: Option<At<RawEscalation>>,
}

/// What the `escalate` key of an `[[app]]` says, before the mode name is resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum RawEscalation {
    Stop,
    Mode(String),
}

/// Most restarts an app may declare per window: restarts are bounded like everything else.
const MAX_RESTARTS_LIMIT: i64 = 1000;

pub(super) struct RawTask {
    pub section: Section,
    pub name: Option<At<String>>,
    /// `impl`: the task implementation this instance runs; absent means the instance name.
    pub implementation: Optional<String>,
    /// `[task.topics]` entries whose value is a valid topic name, in file order; bad ones are
    /// reported and left out.
    pub topics: Vec<RawTopicMap>,
    pub app: Option<At<String>>,
    pub period_ns: Option<At<u64>>,
    pub offset_ns: Option<At<u64>>,
    pub budget_ns: Option<At<u64>>,
    pub let_ns: Optional<u64>,
    pub core: Option<At<u64>>,
    pub overrun: Option<At<RawOverrun>>,
    pub on_fault: Option<At<RawFault>>,
    /// The usable parameters with where each value is; bad ones are reported and left out.
    pub params: BTreeMap<String, At<ParamValue>>,
}

/// One `[task.topics]` entry: `declared = "actual"`.
pub(super) struct RawTopicMap {
    /// The implementation's declared port topic (the key), where the key is written.
    pub declared: At<String>,
    /// The topic this instance uses for it.
    pub topic: At<String>,
}

pub(super) struct RawChannel {
    pub section: Section,
    pub topic: Option<At<String>>,
    pub type_name: Option<At<String>>,
    pub writer: Option<At<String>>,
    pub readers: Option<At<Vec<At<String>>>>,
}

pub(super) struct RawChain {
    pub section: Section,
    pub name: Option<At<String>>,
    pub tasks: Option<At<Vec<At<String>>>>,
    pub precedence: Option<At<bool>>,
    /// Requirements on the chain's bounds, each more than zero.
    pub max_data_age_ns: Optional<u64>,
    pub max_reaction_ns: Optional<u64>,
}

pub(super) struct RawMode {
    pub section: Section,
    pub name: Option<At<String>>,
    pub default: Option<At<bool>>,
    pub tasks: Option<At<Vec<At<String>>>>,
}

/// One entry of `ota.trusted_keys` that is a valid ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RawKey {
    /// 0-based index in the manifest's list (bad entries before it still count), so
    /// errors name the entry the integrator wrote: `ota.trusted_keys[2]`.
    pub index: usize,
    pub bytes: [u8; 32],
}

/// `[ota]`. `Optional::Invalid` fields are already reported.
pub(super) struct RawOta {
    /// The valid keys; bad ones are reported and left out. `None`: not an array.
    pub trusted_keys: Option<At<Vec<At<RawKey>>>>,
    pub probation_ns: Optional<u64>,
    pub probation_hyperperiods: Optional<u64>,
    pub state_dir: Optional<String>,
    pub probation_max_overruns: Optional<u64>,
    pub probation_max_faults: Optional<u64>,
    pub probation_exec_p99_max_percent: Optional<u64>,
    pub probation_heartbeat_timeout_ns: Optional<u64>,
    /// `root_keys`, like `trusted_keys`.
    pub root_keys: Option<At<Vec<At<RawKey>>>>,
    /// `[[ota.key]]` entries whose key is valid; `None` when one was unusable (reported).
    pub scoped_keys: Option<Vec<At<RawScopedKey>>>,
}

/// One `[[ota.key]]`: a signing key and the apps it may sign (`None`: every app).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RawScopedKey {
    pub index: usize,
    pub bytes: [u8; 32],
    pub apps: Option<Vec<At<String>>>,
}

/// The whole manifest as written. Sections keep file order: a task's index here is its
/// [`super::TaskId`].
pub(super) struct RawManifest {
    pub deployment: Option<RawDeployment>,
    /// `None` when the manifest has no `[ota]` table (or it is not a table, reported).
    pub ota: Option<RawOta>,
    pub apps: Vec<RawApp>,
    pub tasks: Vec<RawTask>,
    pub channels: Vec<RawChannel>,
    pub chains: Vec<RawChain>,
    pub modes: Vec<RawMode>,
}

/// The keys a table accepts, each with what it means (shown when it is missing).
type Keys = &'static [(&'static str, &'static str)];

const TOP_KEYS: Keys = &[
    (
        "deployment",
        "the [deployment] table: name, cores, priority, update_safe_modes, wake, wake_by_core",
    ),
    ("app", "one [[app]] table per application"),
    ("task", "one [[task]] table per periodic task"),
    ("channel", "one [[channel]] table per topic"),
    ("chain", "one [[chain]] table per cause-effect chain"),
    ("mode", "one [[mode]] table per operating mode"),
    (
        "ota",
        "the [ota] table: trusted_keys, root_keys, [[ota.key]], probation or probation_hyperperiods, state_dir, probation_max_overruns, probation_max_faults, probation_exec_p99_max_percent, probation_heartbeat_timeout",
    ),
];

const DEPLOYMENT_KEYS: Keys = &[
    ("name", "the deployment's name, e.g. name = \"acc\""),
    (
        "cores",
        "the cores the deployment may use, e.g. cores = [0, 1]",
    ),
    (
        "priority",
        "SCHED_FIFO priority of the dispatchers, 1..=99 (default 80)",
    ),
    (
        "update_safe_modes",
        "modes in which an update may be activated, e.g. [\"parked\"]",
    ),
    (
        "wake",
        "how dispatchers reach a window's start: \"sleep\" (default) or { spin = \"80us\" }",
    ),
    (
        "wake_by_core",
        "per-core wake choices, e.g. [deployment.wake_by_core] 1 = { spin = \"50us\" }",
    ),
];

const APP_KEYS: Keys = &[
    ("name", "the app's name, e.g. name = \"sensing\""),
    ("executable", "the executable hosting the app's tasks"),
    (
        "restart",
        "when the app's process is restarted: \"never\", \"on-failure\" or \"always\"",
    ),
    (
        "max_restarts",
        "most restarts within restart_window before escalating, e.g. max_restarts = 3",
    ),
    (
        "restart_window",
        "the window max_restarts counts in, e.g. restart_window = \"60s\"",
    ),
    (
        "escalate",
        "what a failed app causes: \"stop\" or \"mode:<mode name>\"",
    ),
];

const TASK_KEYS: Keys = &[
    (
        "name",
        "the task's (instance) name, e.g. name = \"radar_front\"; without `impl` it names the task implementation too",
    ),
    (
        "app",
        "the [[app]] hosting the task, e.g. app = \"sensing\"",
    ),
    ("period", "the release period, e.g. period = \"10ms\""),
    (
        "offset",
        "release offset inside the period (default \"0ms\")",
    ),
    (
        "budget",
        "the worst-case execution time per job, e.g. budget = \"500us\"",
    ),
    (
        "let",
        "the logical execution time window (default: the period)",
    ),
    ("core", "the core the task runs on, e.g. core = 0"),
    (
        "overrun",
        "\"report\" (default), \"skip-next\" or \"escalate:<mode name>\"",
    ),
    (
        "on_fault",
        "what a job's fault report (ctx.fault(code)) leads to: \"report\" (default) or \"escalate:<mode name>\"",
    ),
    (
        "params",
        "free-form constructor parameters: integers, floats, booleans, strings",
    ),
    (
        "impl",
        "the task implementation this instance runs, e.g. impl = \"radar\" (default: the task's name)",
    ),
    (
        "topics",
        "this instance's topics for the implementation's ports: [task.topics] radar_track = \"radar_front_track\" (unlisted ports keep their declared topic)",
    ),
];

const CHANNEL_KEYS: Keys = &[
    ("topic", "the topic name, e.g. topic = \"radar_track\""),
    (
        "type",
        "a registered message type, e.g. type = \"RadarTrack\"",
    ),
    ("writer", "the one task that writes the topic"),
    ("readers", "the tasks that read the topic (default none)"),
];

const CHAIN_KEYS: Keys = &[
    ("name", "the chain's name, e.g. name = \"sense_to_act\""),
    (
        "tasks",
        "two or more tasks, each linked to the next by a channel",
    ),
    (
        "precedence",
        "true to order producer before consumer in the plan (default false)",
    ),
    (
        "max_data_age",
        "the most the plan's exact LET data age bound may be, e.g. max_data_age = \"40ms\" (default: no requirement)",
    ),
    (
        "max_reaction",
        "the most the plan's exact LET reaction time bound may be, e.g. max_reaction = \"60ms\" (default: no requirement)",
    ),
];

const MODE_KEYS: Keys = &[
    ("name", "the mode's name, e.g. name = \"drive\""),
    (
        "default",
        "true for the one mode active at start (default false)",
    ),
    (
        "tasks",
        "the tasks released in this mode, e.g. tasks = [\"radar\"]",
    ),
];

const OTA_KEYS: Keys = &[
    (
        "trusted_keys",
        "ed25519 public keys (64 hex digits each) whose bundles may be staged, e.g. [\"3b6a27bc...\"]",
    ),
    (
        "probation",
        "how long a new version must run clean before it is committed, e.g. probation = \"1s\" (at most 1 hour)",
    ),
    (
        "probation_hyperperiods",
        "the probation window in hyperperiods, 1..=100000 (default 25); instead of probation",
    ),
    (
        "state_dir",
        "where update slots and journals live, relative to the manifest's directory",
    ),
    (
        "probation_max_overruns",
        "overruns, skips and deadline misses of the new version's own making (not the platform's) allowed in probation, 0..=1000000 (default 0)",
    ),
    (
        "probation_max_faults",
        "jobs of the new version that may report a fault (ctx.fault(code)) in probation, 0..=1000000 (default 0)",
    ),
    (
        "probation_exec_p99_max_percent",
        "the new version's p99 CPU time per job may be at most this percentage of the replaced version's, 100..=10000 (default 200)",
    ),
    (
        "probation_heartbeat_timeout",
        "how long the new version's heartbeat may stand still, not counting the supervisor's own lateness, e.g. \"500ms\" (10ms..=1min; default 3 hyperperiods, at least 200ms)",
    ),
    (
        "root_keys",
        "ed25519 public keys (64 hex digits each) that sign key documents (`takt ota keys sign`), never bundles",
    ),
    (
        "key",
        "one [[ota.key]] table per signing key with a scope: public = \"<64 hex digits>\", apps = [\"planning\"]",
    ),
];

const OTA_KEY_KEYS: Keys = &[
    (
        "public",
        "the ed25519 public key, 64 hex digits, as in the .pub file `takt ota keygen` writes",
    ),
    (
        "apps",
        "the apps whose bundles this key may sign, e.g. apps = [\"planning\"] (absent: every app)",
    ),
];

const APP: SectionKind = SectionKind {
    kind: "app",
    name_key: "name",
    keys: APP_KEYS,
    what: "app name",
};
const TASK: SectionKind = SectionKind {
    kind: "task",
    name_key: "name",
    keys: TASK_KEYS,
    what: "task name",
};
const CHANNEL: SectionKind = SectionKind {
    kind: "channel",
    name_key: "topic",
    keys: CHANNEL_KEYS,
    what: "topic name",
};
const CHAIN: SectionKind = SectionKind {
    kind: "chain",
    name_key: "name",
    keys: CHAIN_KEYS,
    what: "chain name",
};
const MODE: SectionKind = SectionKind {
    kind: "mode",
    name_key: "name",
    keys: MODE_KEYS,
    what: "mode name",
};

/// Default SCHED_FIFO priority of the dispatcher threads.
const DEFAULT_PRIORITY: u8 = 80;

/// Longest name: names end up in shared-memory service names, which have a length limit.
const MAX_NAME_CHARS: usize = 64;

/// The one-line answer to an empty file: what the smallest manifest contains.
const EMPTY_MESSAGE: &str = "the manifest is empty; a manifest needs a [deployment] table \
     (name, cores), at least one [[app]] (name), [[task]] (name, app, period, budget, core) \
     and [[mode]] (name, tasks, one with default = true), and a [[channel]] per topic";

/// Parses `text` into the raw manifest. `None` when the file is not usable TOML or is
/// empty; the reason is in `cx`.
pub(super) fn parse_document(cx: &mut Diagnostics<'_>, text: &str) -> Option<RawManifest> {
    let (document, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        // The parser's recovery leaves holes in the tree; checking its fields too would
        // bury the real problem under missing-key errors that are not true.
        for e in &syntax_errors {
            let offset = e.span().map_or(0, |s| s.start);
            let mut message = format!("invalid TOML: {}", e.message());
            if e.message() == "duplicate key" {
                if let Some(span) = e.span() {
                    message = format!(
                        "invalid TOML: duplicate key `{}`; a key may appear once per table",
                        cx.source.snippet(span)
                    );
                }
            }
            cx.error(offset, "", message);
        }
        return None;
    }
    let root = document.get_ref();
    if root.is_empty() {
        cx.error(0, "", EMPTY_MESSAGE);
        return None;
    }
    check_keys(cx, root, "", TOP_KEYS, "the top level");

    let deployment = match root.get("deployment") {
        None => {
            cx.error(
                0,
                "deployment",
                "missing the [deployment] table; it needs name = \"...\" and cores = [...]",
            );
            None
        }
        Some(v) => match v.get_ref() {
            DeValue::Table(t) => Some(deployment(cx, t, v.span().start)),
            _ => {
                expected(cx, "deployment", v, "a table: write [deployment]");
                None
            }
        },
    };

    let apps = sections(cx, root, "app")
        .into_iter()
        .map(|(i, t, at)| app(cx, t, at, i))
        .collect();
    let tasks = sections(cx, root, "task")
        .into_iter()
        .map(|(i, t, at)| task(cx, t, at, i))
        .collect();
    let channels = sections(cx, root, "channel")
        .into_iter()
        .map(|(i, t, at)| channel(cx, t, at, i))
        .collect();
    let chains = sections(cx, root, "chain")
        .into_iter()
        .map(|(i, t, at)| chain(cx, t, at, i))
        .collect();
    let modes = sections(cx, root, "mode")
        .into_iter()
        .map(|(i, t, at)| mode(cx, t, at, i))
        .collect();
    let ota = root.get("ota").and_then(|v| match v.get_ref() {
        DeValue::Table(t) => Some(ota(cx, t, v.span().start)),
        _ => {
            expected(cx, "ota", v, "a table: write [ota]");
            None
        }
    });

    Some(RawManifest {
        deployment,
        ota,
        apps,
        tasks,
        channels,
        chains,
        modes,
    })
}

/// The entries of an array of tables (`[[task]]`), as `(index, table, offset)`.
fn sections<'a, 'i>(
    cx: &mut Diagnostics<'_>,
    root: &'a DeTable<'i>,
    key: &str,
) -> Vec<(usize, &'a DeTable<'i>, usize)> {
    let Some(value) = root.get(key) else {
        return Vec::new();
    };
    match value.get_ref() {
        DeValue::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item.get_ref() {
                    DeValue::Table(t) => out.push((i, t, item.span().start)),
                    _ => expected(
                        cx,
                        &format!("{key}[{i}]"),
                        item,
                        &format!("a table: write each entry as a [[{key}]] section"),
                    ),
                }
            }
            out
        }
        DeValue::Table(t) => {
            // Checked as the one entry it meant to be, so its other mistakes show too.
            cx.error(
                value.span().start,
                key,
                format!("write [[{key}]] (an array of tables, one per {key}), not [{key}]"),
            );
            vec![(0, t, value.span().start)]
        }
        _ => {
            expected(
                cx,
                key,
                value,
                &format!("an array of tables: write each entry as a [[{key}]] section"),
            );
            Vec::new()
        }
    }
}

fn deployment(cx: &mut Diagnostics<'_>, t: &DeTable<'_>, at: usize) -> RawDeployment {
    let path = "deployment";
    check_keys(cx, t, path, DEPLOYMENT_KEYS, "[deployment]");
    let name = required(cx, t, at, path, DEPLOYMENT_KEYS, "name", |cx, f, v| {
        name(cx, f, v, "deployment name")
    });
    let cores = required(cx, t, at, path, DEPLOYMENT_KEYS, "cores", index_list);
    let priority = optional(cx, t, path, "priority", |cx, f, v| {
        let p = integer(cx, f, v)?;
        match u8::try_from(p.value) {
            Ok(n) if (1..=99).contains(&n) => Some(At { value: n, at: p.at }),
            _ => {
                cx.error(
                    p.at,
                    f,
                    format!(
                        "priority {} is out of range; allowed: 1..=99 (SCHED_FIFO)",
                        p.value
                    ),
                );
                None
            }
        }
    })
    .or_default(DEFAULT_PRIORITY, at);
    let update_safe_modes =
        optional(cx, t, path, "update_safe_modes", string_list).or_default(Vec::new(), at);
    let wake_choice = optional(cx, t, path, "wake", wake).or_default(Wake::Sleep, at);
    let mut wake_by_core = Vec::new();
    if let Some(v) = t.get("wake_by_core") {
        let field = format!("{path}.wake_by_core");
        match v.get_ref() {
            DeValue::Table(cores) => {
                for (key, value) in cores.iter() {
                    let key_text: &str = key.get_ref();
                    let item = format!("{field}.{key_text}");
                    let core = match key_text.parse::<u64>() {
                        Ok(n) => Some(At {
                            value: n,
                            at: key.span().start,
                        }),
                        Err(_) => {
                            cx.error(
                                key.span().start,
                                &item,
                                format!(
                                    "{key_text:?} is not a core number; the keys of wake_by_core are core numbers from `cores`, e.g. 1 = \"sleep\""
                                ),
                            );
                            None
                        }
                    };
                    if let (Some(core), Some(w)) = (core, wake(cx, &item, value)) {
                        wake_by_core.push((core, w));
                    }
                }
            }
            _ => expected(
                cx,
                &field,
                v,
                "a table of core numbers: [deployment.wake_by_core] 1 = { spin = \"50us\" }",
            ),
        }
    }
    RawDeployment {
        name,
        cores,
        priority,
        update_safe_modes,
        wake: wake_choice,
        wake_by_core,
    }
}

const WAKE_HELP: &str = "allowed: \"sleep\", or { spin = \"<duration>\" } with a margin from 1us to 1ms (e.g. { spin = \"80us\" })";

/// `wake = "sleep"` or `wake = { spin = "80us" }`.
fn wake(cx: &mut Diagnostics<'_>, field: &str, v: &Spanned<DeValue<'_>>) -> Option<At<Wake>> {
    let at = v.span().start;
    match v.get_ref() {
        DeValue::String(s) if s.trim() == "sleep" => Some(At {
            value: Wake::Sleep,
            at,
        }),
        DeValue::Table(t) => {
            let keys: Vec<&str> = t.iter().map(|(k, _)| -> &str { k.get_ref() }).collect();
            if keys != ["spin"] {
                cx.error(
                    at,
                    field,
                    format!(
                        "a wake table has exactly one key, `spin`; found {}; {WAKE_HELP}",
                        if keys.is_empty() {
                            "none".to_string()
                        } else {
                            keys.iter()
                                .map(|k| format!("`{k}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    ),
                );
                return None;
            }
            let spin = t.get("spin")?;
            let spin_field = format!("{field}.spin");
            let margin = duration(cx, &spin_field, spin)?;
            if margin.value == 0 || margin.value > limits::MAX_SPIN_MARGIN_NS {
                cx.error(
                    margin.at,
                    &spin_field,
                    format!(
                        "a spin margin of {} is out of range; {WAKE_HELP}",
                        format_ns(margin.value)
                    ),
                );
                return None;
            }
            Some(At {
                value: Wake::Spin {
                    margin_ns: margin.value,
                },
                at,
            })
        }
        DeValue::String(s) => {
            cx.error(
                at,
                field,
                format!("{s:?} is not a wake choice; {WAKE_HELP}"),
            );
            None
        }
        _ => {
            expected(cx, field, v, &format!("\"sleep\" or a table; {WAKE_HELP}"));
            None
        }
    }
}

fn ota(cx: &mut Diagnostics<'_>, t: &DeTable<'_>, at: usize) -> RawOta {
    let path = "ota";
    check_keys(cx, t, path, OTA_KEYS, "[ota]");
    let trusted_keys = match t.get("trusted_keys") {
        None => Some(At {
            value: Vec::new(),
            at,
        }),
        Some(v) => trusted_keys(cx, "ota.trusted_keys", v),
    };
    // Two ways to say one thing would leave it open which one wins; the one written
    // second is reported, naming where the first is.
    if let (Some((k1, _)), Some((k2, _))) = (
        t.get_key_value("probation"),
        t.get_key_value("probation_hyperperiods"),
    ) {
        let (first, second) = if k1.span().start <= k2.span().start {
            (k1, k2)
        } else {
            (k2, k1)
        };
        let first_line = cx.line(first.span().start);
        let first_key: &str = first.get_ref();
        let second_key: &str = second.get_ref();
        cx.error(
            second.span().start,
            format!("{path}.{second_key}"),
            format!(
                "both `probation` and `probation_hyperperiods` are given (`{first_key}` on line {first_line}); give one: a duration (probation = \"1s\") or a count of hyperperiods (probation_hyperperiods = 25)"
            ),
        );
    }
    let probation_ns = optional(cx, t, path, "probation", probation_duration);
    let probation_hyperperiods = optional(
        cx,
        t,
        path,
        "probation_hyperperiods",
        probation_hyperperiods,
    );
    let state_dir = optional(cx, t, path, "state_dir", state_dir);
    let root_keys = match t.get("root_keys") {
        None => Some(At {
            value: Vec::new(),
            at,
        }),
        Some(v) => self::trusted_keys(cx, "ota.root_keys", v),
    };
    let scoped_keys = match t.get("key") {
        None => Some(Vec::new()),
        Some(v) => scoped_keys(cx, v),
    };
    let probation_max_overruns = optional(cx, t, path, "probation_max_overruns", |cx, f, v| {
        bounded_integer(cx, f, v, 0, limits::MAX_PROBATION_OVERRUNS)
    });
    let probation_max_faults = optional(cx, t, path, "probation_max_faults", |cx, f, v| {
        bounded_integer(cx, f, v, 0, limits::MAX_PROBATION_FAULTS)
    });
    let probation_exec_p99_max_percent =
        optional(cx, t, path, "probation_exec_p99_max_percent", |cx, f, v| {
            bounded_integer(
                cx,
                f,
                v,
                limits::MIN_EXEC_P99_PERCENT,
                limits::MAX_EXEC_P99_PERCENT,
            )
        });
    let probation_heartbeat_timeout_ns = optional(
        cx,
        t,
        path,
        "probation_heartbeat_timeout",
        |cx, f, v| {
            let d = duration(cx, f, v)?;
            if (limits::MIN_HEARTBEAT_TIMEOUT_NS..=limits::MAX_HEARTBEAT_TIMEOUT_NS)
                .contains(&d.value)
            {
                return Some(d);
            }
            cx.error(
                d.at,
                f,
                format!(
                    "the heartbeat timeout {} is out of range; allowed: {} to {}, e.g. probation_heartbeat_timeout = \"500ms\"",
                    format_ns(d.value),
                    format_ns(limits::MIN_HEARTBEAT_TIMEOUT_NS),
                    format_ns(limits::MAX_HEARTBEAT_TIMEOUT_NS)
                ),
            );
            None
        },
    );
    RawOta {
        trusted_keys,
        probation_ns,
        probation_hyperperiods,
        state_dir,
        root_keys,
        scoped_keys,
        probation_max_overruns,
        probation_max_faults,
        probation_exec_p99_max_percent,
        probation_heartbeat_timeout_ns,
    }
}

/// An integer in `min..=max`, or an error naming the range.
fn bounded_integer(
    cx: &mut Diagnostics<'_>,
    field: &str,
    v: &Spanned<DeValue<'_>>,
    min: u64,
    max: u64,
) -> Option<At<u64>> {
    let n = integer(cx, field, v)?;
    match u64::try_from(n.value) {
        Ok(value) if (min..=max).contains(&value) => Some(At { value, at: n.at }),
        _ => {
            let key = field.rsplit('.').next().unwrap_or(field);
            cx.error(
                n.at,
                field,
                format!("{key} {} is out of range; allowed: {min}..={max}", n.value),
            );
            None
        }
    }
}

/// `[[ota.key]]`: each a table with `public` (required) and `apps` (optional).
fn scoped_keys(
    cx: &mut Diagnostics<'_>,
    v: &Spanned<DeValue<'_>>,
) -> Option<Vec<At<RawScopedKey>>> {
    let field = "ota.key";
    let DeValue::Array(items) = v.get_ref() else {
        expected(
            cx,
            field,
            v,
            "an array of tables: write [[ota.key]] with public = \"...\" and apps = [...]",
        );
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (index, item) in items.iter().enumerate() {
        let item_field = format!("{field}[{index}]");
        let DeValue::Table(t) = item.get_ref() else {
            expected(cx, &item_field, item, "a table with public and apps");
            ok = false;
            continue;
        };
        check_keys(cx, t, &item_field, OTA_KEY_KEYS, "[[ota.key]]");
        let Some(public) = required(
            cx,
            t,
            item.span().start,
            &item_field,
            OTA_KEY_KEYS,
            "public",
            string,
        ) else {
            ok = false;
            continue;
        };
        let bytes = match public_key(&public.value) {
            Ok(b) => b,
            Err(why) => {
                cx.error(public.at, format!("{item_field}.public"), why);
                ok = false;
                continue;
            }
        };
        let apps = match t.get("apps") {
            None => None,
            Some(list) => {
                let apps_field = format!("{item_field}.apps");
                let DeValue::Array(names) = list.get_ref() else {
                    expected(
                        cx,
                        &apps_field,
                        list,
                        "an array of app names, e.g. [\"planning\"]",
                    );
                    ok = false;
                    continue;
                };
                let mut apps = Vec::with_capacity(names.len());
                for (i, n) in names.iter().enumerate() {
                    match string(cx, &format!("{apps_field}[{i}]"), n) {
                        Some(name) => apps.push(name),
                        None => ok = false,
                    }
                }
                Some(apps)
            }
        };
        out.push(At {
            value: RawScopedKey { index, bytes, apps },
            at: public.at,
        });
    }
    ok.then_some(out)
}

/// `ota.trusted_keys`: each entry 64 hex digits that decode to an ed25519 public key.
/// Bad entries are reported and left out; the good ones keep their manifest index.
fn trusted_keys(
    cx: &mut Diagnostics<'_>,
    field: &str,
    v: &Spanned<DeValue<'_>>,
) -> Option<At<Vec<At<RawKey>>>> {
    let DeValue::Array(items) = v.get_ref() else {
        expected(
            cx,
            field,
            v,
            "an array of ed25519 public keys, 64 hex digits each, e.g. [\"3b6a27bc...\"]",
        );
        return None;
    };
    let mut out = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let item_field = format!("{field}[{index}]");
        let Some(text) = string(cx, &item_field, item) else {
            continue;
        };
        match public_key(&text.value) {
            Ok(bytes) => out.push(At {
                value: RawKey { index, bytes },
                at: text.at,
            }),
            Err(why) => cx.error(text.at, item_field, why),
        }
    }
    Some(At {
        value: out,
        at: v.span().start,
    })
}

const KEY_HELP: &str = "an ed25519 public key is written as 64 hex digits (32 bytes), as in the .pub file `takt ota keygen` writes";

/// The 32 bytes of an ed25519 public key written in hex, or why `text` is not one.
fn public_key(text: &str) -> Result<[u8; 32], String> {
    // A non-hex character is reported before the length: a key pasted with a prefix or
    // with spaces is then named for what is wrong with it, not for its length.
    if let Some((i, c)) = text
        .chars()
        .enumerate()
        .find(|(_, c)| !c.is_ascii_hexdigit())
    {
        let quoted: String = text.chars().take(MAX_KEY_QUOTE_CHARS).collect();
        let ellipsis = if text.chars().count() > MAX_KEY_QUOTE_CHARS {
            "..."
        } else {
            ""
        };
        return Err(format!(
            "{quoted:?}{ellipsis} is not hex: character {} is {c:?}, not one of 0-9, a-f, A-F; {KEY_HELP}",
            i + 1
        ));
    }
    // Only ASCII hex digits are left, so characters and bytes are the same count.
    if text.len() != 64 {
        return Err(format!(
            "the key has {} hex digits, not 64; {KEY_HELP}",
            text.len()
        ));
    }
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        // Both characters are ASCII hex digits (checked above), so this cannot fail;
        // the fallback keeps the function total.
        *byte = std::str::from_utf8(pair)
            .ok()
            .and_then(|p| u8::from_str_radix(p, 16).ok())
            .unwrap_or(0);
    }
    match ed25519_dalek::VerifyingKey::from_bytes(&bytes) {
        Err(_) => Err(format!(
            "{text} is 64 hex digits but not an ed25519 public key (the bytes are not a point on the curve); {KEY_HELP}"
        )),
        // A small-order key (e.g. all zeros) is a curve point, but under it a signature
        // for any bundle can be forged in a few tries: trusting it would trust anyone.
        Ok(key) if key.is_weak() => Err(format!(
            "{text} is a weak ed25519 key (a point of small order): signatures under it can be forged; {KEY_HELP}"
        )),
        Ok(_) => Ok(bytes),
    }
}

/// Longest part of a bad key quoted in a message.
const MAX_KEY_QUOTE_CHARS: usize = 16;

/// `ota.probation`: a duration, more than zero and at most [`limits::MAX_PROBATION_NS`].
fn probation_duration(
    cx: &mut Diagnostics<'_>,
    field: &str,
    v: &Spanned<DeValue<'_>>,
) -> Option<At<u64>> {
    let d = duration(cx, field, v)?;
    let problem = if d.value == 0 {
        "the probation window is zero: a new version would be committed without being watched"
            .to_string()
    } else if d.value > limits::MAX_PROBATION_NS {
        format!(
            "the probation window {} is longer than the limit",
            format_ns(d.value)
        )
    } else {
        return Some(d);
    };
    cx.error(
        d.at,
        field,
        format!(
            "{problem}; allowed: more than 0 and at most {} (1 hour), e.g. probation = \"1s\"",
            format_ns(limits::MAX_PROBATION_NS)
        ),
    );
    None
}

/// `ota.probation_hyperperiods`: an integer in 1..=[`limits::MAX_PROBATION_HYPERPERIODS`].
fn probation_hyperperiods(
    cx: &mut Diagnostics<'_>,
    field: &str,
    v: &Spanned<DeValue<'_>>,
) -> Option<At<u64>> {
    let n = integer(cx, field, v)?;
    match u64::try_from(n.value) {
        Ok(value) if (1..=limits::MAX_PROBATION_HYPERPERIODS).contains(&value) => {
            Some(At { value, at: n.at })
        }
        _ => {
            cx.error(
                n.at,
                field,
                format!(
                    "probation_hyperperiods {} is out of range; allowed: 1..={}",
                    n.value,
                    limits::MAX_PROBATION_HYPERPERIODS
                ),
            );
            None
        }
    }
}

/// `ota.state_dir`: a non-empty path without NUL characters (no path with one can be
/// opened).
fn state_dir(
    cx: &mut Diagnostics<'_>,
    field: &str,
    v: &Spanned<DeValue<'_>>,
) -> Option<At<String>> {
    let s = string(cx, field, v)?;
    let problem = if s.value.trim().is_empty() {
        "the state directory is empty"
    } else if s.value.contains('\0') {
        "the state directory contains a NUL character"
    } else {
        return Some(s);
    };
    cx.error(
        s.at,
        field,
        format!("{problem}; give a directory path, e.g. state_dir = \"/var/lib/takt/acc\" (relative paths are taken from the manifest's directory), or leave the key out"),
    );
    None
}

/// What distinguishes one kind of named section from another.
#[derive(Clone, Copy)]
struct SectionKind {
    /// The TOML key of the array of tables: `task` for `[[task]]`.
    kind: &'static str,
    /// The key that names an entry (`topic` for channels).
    name_key: &'static str,
    keys: Keys,
    /// How messages call the name: "task name".
    what: &'static str,
}

/// Reads a section's name first, so every other error can say `task.radar.budget`
/// rather than `task[3].budget`.
fn named_section(
    cx: &mut Diagnostics<'_>,
    t: &DeTable<'_>,
    at: usize,
    index: usize,
    kind: &SectionKind,
) -> (Section, Option<At<String>>) {
    let SectionKind {
        kind,
        name_key,
        keys,
        what,
    } = *kind;
    let indexed = format!("{kind}[{index}]");
    let name = required(cx, t, at, &indexed, keys, name_key, |cx, f, v| {
        name(cx, f, v, what)
    });
    let path = match &name {
        Some(n) if name_problem(&n.value).is_none() => format!("{kind}.{}", n.value),
        _ => indexed,
    };
    check_keys(cx, t, &path, keys, &format!("[[{kind}]]"));
    (Section { at, path }, name)
}

fn app(cx: &mut Diagnostics<'_>, t: &DeTable<'_>, at: usize, index: usize) -> RawApp {
    let (section, name) = named_section(cx, t, at, index, &APP);
    let executable = match optional(cx, t, &section.path, "executable", string) {
        Optional::Absent => Some(At {
            value: None,
            at: section.at,
        }),
        Optional::Invalid => None,
        Optional::Given(s) => {
            if s.value.trim().is_empty() {
                cx.error(
                    s.at,
                    section.field("executable"),
                    "the executable name is empty; name the program that hosts the app, or leave the key out",
                );
            }
            Some(At {
                value: Some(s.value),
                at: s.at,
            })
        }
    };
    let defaults = super::model::Supervision::default();
    let restart = optional(cx, t, &section.path, "restart", restart_policy)
        .or_default(defaults.restart, section.at);
    let max_restarts = optional(cx, t, &section.path, "max_restarts", max_restarts)
        .or_default(defaults.max_restarts, section.at);
    let restart_window_ns = match optional(cx, t, &section.path, "restart_window", duration) {
        Optional::Given(w) if w.value == 0 => {
            cx.error(
                w.at,
                section.field("restart_window"),
                "the restart window is zero; give a positive duration, e.g. \"60s\"",
            );
            None
        }
        other => other.or_default(defaults.restart_window_ns, section.at),
    };
    let escalate = optional(cx, t, &section.path, "escalate", escalation)
        .or_default(RawEscalation::Stop, section.at);
    RawApp {
        section,
        name,
        executable,
        restart,
        max_restarts,
        restart_window_ns,
        escalate,
    }
}

fn restart_policy(
    cx: &mut Diagnostics<'_>,
    field: &str,
    v: &Spanned<DeValue<'_>>,
) -> Option<At<RestartPolicy>> {
    let s = string(cx, field, v)?;
    let value = match s.value.trim() {
        "never" => RestartPolicy::Never,
        "on-failure" => RestartPolicy::OnFailure,
        "always" => RestartPolicy::Always,
        _ => {
            cx.error(
                s.at,
                field,
                format!(
                    "{:?} is not a restart policy; allowed: \"never\", \"on-failure\", \"always\"",
                    s.value
                ),
            );
            return None;
        }
    };
    Some(At { value, at: s.at })
}

fn max_restarts(
    cx: &mut Diagnostics<'_>,
    field: &str,
    v: &Spanned<DeValue<'_>>,
) -> Option<At<u32>> {
    let n = integer(cx, field, v)?;
    if !(0..=MAX_RESTARTS_LIMIT).contains(&n.value) {
        cx.error(
            n.at,
            field,
            format!(
                "max_restarts {} is out of range; allowed is 0 to {MAX_RESTARTS_LIMIT}",
                n.value
            ),
        );
        return None;
    }
    Some(At {
        value: n.value as u32,
        at: n.at,
    })
}

fn escalation(
    cx: &mut Diagnostics<'_>,
    field: &str,
    v: &Spanned<DeValue<'_>>,
) -> Option<At<RawEscalation>> {
    let s = string(cx, field, v)?;
    let text = s.value.trim();
    let value = if text == "stop" {
        RawEscalation::Stop
    } else {
        match text.strip_prefix("mode:").map(str::trim) {
            Some(mode) if !mode.is_empty() => RawEscalation::Mode(mode.to_string()),
            _ => {
                cx.error(
                    s.at,
                    field,
                    format!(
                        "{:?} is not an escalation; allowed: \"stop\", \"mode:<mode name>\" (e.g. \"mode:degraded\")",
                        s.value
                    ),
                );
                return None;
            }
        }
    };
    Some(At { value, at: s.at })
}

fn task(cx: &mut Diagnostics<'_>, t: &DeTable<'_>, at: usize, index: usize) -> RawTask {
    let (section, name) = named_section(cx, t, at, index, &TASK);
    let path = section.path.clone();
    let app = required(cx, t, at, &path, TASK_KEYS, "app", string);
    let period_ns = required(cx, t, at, &path, TASK_KEYS, "period", duration);
    let offset_ns = optional(cx, t, &path, "offset", duration).or_default(0, at);
    let budget_ns = required(cx, t, at, &path, TASK_KEYS, "budget", duration);
    let let_ns = optional(cx, t, &path, "let", duration);
    let core = required(cx, t, at, &path, TASK_KEYS, "core", core_number);
    let overrun = optional(cx, t, &path, "overrun", overrun).or_default(RawOverrun::Report, at);
    let on_fault = optional(cx, t, &path, "on_fault", on_fault).or_default(RawFault::Report, at);
    let params = match t.get("params") {
        None => BTreeMap::new(),
        Some(v) => params(cx, &section.field("params"), v),
    };
    let implementation = optional(cx, t, &path, "impl", |cx, f, v| {
        self::name(cx, f, v, "task implementation name")
    });
    let topics = match t.get("topics") {
        None => Vec::new(),
        Some(v) => topic_map(cx, &section.field("topics"), v),
    };
    RawTask {
        section,
        name,
        implementation,
        topics,
        app,
        period_ns,
        offset_ns,
        budget_ns,
        let_ns,
        core,
        overrun,
        on_fault,
        params,
    }
}

fn channel(cx: &mut Diagnostics<'_>, t: &DeTable<'_>, at: usize, index: usize) -> RawChannel {
    let (section, topic) = named_section(cx, t, at, index, &CHANNEL);
    let path = section.path.clone();
    let type_name = required(cx, t, at, &path, CHANNEL_KEYS, "type", string);
    let writer = required(cx, t, at, &path, CHANNEL_KEYS, "writer", string);
    let readers = optional(cx, t, &path, "readers", string_list).or_default(Vec::new(), at);
    RawChannel {
        section,
        topic,
        type_name,
        writer,
        readers,
    }
}

fn chain(cx: &mut Diagnostics<'_>, t: &DeTable<'_>, at: usize, index: usize) -> RawChain {
    let (section, name) = named_section(cx, t, at, index, &CHAIN);
    let path = section.path.clone();
    let tasks = required(cx, t, at, &path, CHAIN_KEYS, "tasks", string_list);
    let precedence = optional(cx, t, &path, "precedence", boolean).or_default(false, at);
    let max_data_age_ns = optional(cx, t, &path, "max_data_age", requirement);
    let max_reaction_ns = optional(cx, t, &path, "max_reaction", requirement);
    RawChain {
        section,
        name,
        tasks,
        precedence,
        max_data_age_ns,
        max_reaction_ns,
    }
}

/// `chain.*.max_data_age` and `chain.*.max_reaction`: a duration more than zero. No bound
/// can be zero (every task's LET is positive), so a zero requirement could never be met.
fn requirement(cx: &mut Diagnostics<'_>, field: &str, v: &Spanned<DeValue<'_>>) -> Option<At<u64>> {
    let d = duration(cx, field, v)?;
    if d.value == 0 {
        cx.error(
            d.at,
            field,
            "the requirement is zero, which no chain can meet (every task's LET window is longer than zero); allowed: a duration more than zero, e.g. \"40ms\", or leave the key out for no requirement",
        );
        return None;
    }
    Some(d)
}

fn mode(cx: &mut Diagnostics<'_>, t: &DeTable<'_>, at: usize, index: usize) -> RawMode {
    let (section, name) = named_section(cx, t, at, index, &MODE);
    let path = section.path.clone();
    let default = optional(cx, t, &path, "default", boolean).or_default(false, at);
    let tasks = required(cx, t, at, &path, MODE_KEYS, "tasks", string_list);
    RawMode {
        section,
        name,
        default,
        tasks,
    }
}

/// Reports every key of `t` that `keys` does not list, naming the allowed ones.
fn check_keys(cx: &mut Diagnostics<'_>, t: &DeTable<'_>, path: &str, keys: Keys, what: &str) {
    for (key, _) in t.iter() {
        let key_text: &str = key.get_ref();
        if keys.iter().any(|(k, _)| *k == key_text) {
            continue;
        }
        let allowed: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
        let hint = closest(key_text, allowed.iter().copied())
            .map(|k| format!(" (did you mean `{k}`?)"))
            .unwrap_or_default();
        let field = if path.is_empty() {
            key_text.to_string()
        } else {
            format!("{path}.{key_text}")
        };
        cx.error(
            key.span().start,
            field,
            format!(
                "unknown key `{key_text}` in {what}{hint}; allowed keys here: {}",
                allowed.join(", ")
            ),
        );
    }
}

/// A value conversion: reports its own errors and returns `None` for an unusable value.
type Convert<T> = fn(&mut Diagnostics<'_>, &str, &Spanned<DeValue<'_>>) -> Option<At<T>>;

fn required<T>(
    cx: &mut Diagnostics<'_>,
    t: &DeTable<'_>,
    at: usize,
    path: &str,
    keys: Keys,
    key: &str,
    convert: impl FnOnce(&mut Diagnostics<'_>, &str, &Spanned<DeValue<'_>>) -> Option<At<T>>,
) -> Option<At<T>> {
    let field = format!("{path}.{key}");
    match t.get(key) {
        Some(v) => convert(cx, &field, v),
        None => {
            let meaning = keys.iter().find(|(k, _)| *k == key).map_or("", |(_, m)| *m);
            cx.error(
                at,
                field,
                format!("missing required key `{key}`: {meaning}"),
            );
            None
        }
    }
}

fn optional<T>(
    cx: &mut Diagnostics<'_>,
    t: &DeTable<'_>,
    path: &str,
    key: &str,
    convert: impl FnOnce(&mut Diagnostics<'_>, &str, &Spanned<DeValue<'_>>) -> Option<At<T>>,
) -> Optional<T> {
    match t.get(key) {
        None => Optional::Absent,
        Some(v) => match convert(cx, &format!("{path}.{key}"), v) {
            Some(value) => Optional::Given(value),
            None => Optional::Invalid,
        },
    }
}

/// Reports a value of the wrong type: what was expected and what was found.
fn expected(cx: &mut Diagnostics<'_>, field: &str, v: &Spanned<DeValue<'_>>, what: &str) {
    let found = found(cx, v);
    cx.error(
        v.span().start,
        field,
        format!("expected {what}, found {found}"),
    );
}

fn found(cx: &Diagnostics<'_>, v: &Spanned<DeValue<'_>>) -> String {
    match v.get_ref() {
        DeValue::Table(_) | DeValue::Array(_) => v.get_ref().type_str().to_string(),
        other => format!("{} {}", other.type_str(), cx.source.snippet(v.span())),
    }
}

fn string(cx: &mut Diagnostics<'_>, field: &str, v: &Spanned<DeValue<'_>>) -> Option<At<String>> {
    match v.get_ref() {
        DeValue::String(s) => Some(At {
            value: s.to_string(),
            at: v.span().start,
        }),
        _ => {
            expected(cx, field, v, "a string");
            None
        }
    }
}

fn boolean(cx: &mut Diagnostics<'_>, field: &str, v: &Spanned<DeValue<'_>>) -> Option<At<bool>> {
    match v.get_ref() {
        DeValue::Boolean(b) => Some(At {
            value: *b,
            at: v.span().start,
        }),
        _ => {
            expected(cx, field, v, "a boolean (true or false)");
            None
        }
    }
}

fn integer(cx: &mut Diagnostics<'_>, field: &str, v: &Spanned<DeValue<'_>>) -> Option<At<i64>> {
    match v.get_ref() {
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Some(At {
                value: n,
                at: v.span().start,
            }),
            Err(_) => {
                cx.error(
                    v.span().start,
                    field,
                    format!(
                        "the integer {} does not fit in 64 bits",
                        cx.source.snippet(v.span())
                    ),
                );
                None
            }
        },
        _ => {
            expected(cx, field, v, "an integer");
            None
        }
    }
}

/// A core number: a non-negative integer.
fn core_number(cx: &mut Diagnostics<'_>, field: &str, v: &Spanned<DeValue<'_>>) -> Option<At<u64>> {
    let n = integer(cx, field, v)?;
    match u64::try_from(n.value) {
        Ok(value) => Some(At { value, at: n.at }),
        Err(_) => {
            cx.error(
                n.at,
                field,
                format!("core {} is negative; cores are numbered from 0", n.value),
            );
            None
        }
    }
}

fn index_list(
    cx: &mut Diagnostics<'_>,
    field: &str,
    v: &Spanned<DeValue<'_>>,
) -> Option<At<Vec<At<u64>>>> {
    list(
        cx,
        field,
        v,
        "an array of core numbers, e.g. [0, 1]",
        core_number,
    )
}

fn string_list(
    cx: &mut Diagnostics<'_>,
    field: &str,
    v: &Spanned<DeValue<'_>>,
) -> Option<At<Vec<At<String>>>> {
    list(
        cx,
        field,
        v,
        "an array of names, e.g. [\"a\", \"b\"]",
        string,
    )
}

/// An array whose items all convert; bad items are reported and left out, so the good
/// ones are still checked against the rest of the manifest.
fn list<T>(
    cx: &mut Diagnostics<'_>,
    field: &str,
    v: &Spanned<DeValue<'_>>,
    what: &str,
    item: Convert<T>,
) -> Option<At<Vec<At<T>>>> {
    match v.get_ref() {
        DeValue::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, value) in items.iter().enumerate() {
                if let Some(x) = item(cx, &format!("{field}[{i}]"), value) {
                    out.push(x);
                }
            }
            Some(At {
                value: out,
                at: v.span().start,
            })
        }
        _ => {
            expected(cx, field, v, what);
            None
        }
    }
}

/// Why `name` cannot be a name, if it cannot.
pub(super) fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Some(format!(
            "is {} characters long, more than {MAX_NAME_CHARS}",
            name.chars().count()
        ));
    }
    name.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        .map(|c| format!("contains {c:?}"))
}

/// A string that is also a name: it becomes part of shared-memory service names.
fn name(
    cx: &mut Diagnostics<'_>,
    field: &str,
    v: &Spanned<DeValue<'_>>,
    what: &str,
) -> Option<At<String>> {
    let s = string(cx, field, v)?;
    if let Some(problem) = name_problem(&s.value) {
        cx.error(
            s.at,
            field,
            format!(
                "{what} {:?} {problem}; names use only A-Z, a-z, 0-9, `_` and `-`, 1 to {MAX_NAME_CHARS} characters",
                s.value
            ),
        );
    }
    Some(s)
}

const DURATION_HELP: &str =
    "write a non-negative whole number with a unit: ns, us, ms or s (e.g. \"10ms\")";

/// A duration string (`"10ms"`) in nanoseconds.
fn duration(cx: &mut Diagnostics<'_>, field: &str, v: &Spanned<DeValue<'_>>) -> Option<At<u64>> {
    let at = v.span().start;
    let message = match v.get_ref() {
        DeValue::String(s) => {
            let text = s.trim();
            if text.starts_with('-') {
                format!("negative durations are not allowed: {s:?}; {DURATION_HELP}")
            } else if let Some(dot) = text.find('.') {
                let whole = &text[..dot];
                if !whole.is_empty() && whole.bytes().all(|b| b.is_ascii_digit()) {
                    format!(
                        "{s:?}: durations are whole numbers; use a smaller unit (\"1500us\", not \"1.5ms\")"
                    )
                } else {
                    format!("{s:?} is not a duration; {DURATION_HELP}")
                }
            } else {
                match parse_duration_ns(s) {
                    Ok(ns) => return Some(At { value: ns, at }),
                    Err(why) => format!("{why}; {DURATION_HELP}"),
                }
            }
        }
        DeValue::Integer(i) if i.as_str().starts_with('-') => {
            format!(
                "negative durations are not allowed: {}; {DURATION_HELP}",
                cx.source.snippet(v.span())
            )
        }
        DeValue::Integer(_) | DeValue::Float(_) => format!(
            "expected a duration string with a unit, found the bare number {}; {DURATION_HELP}",
            cx.source.snippet(v.span())
        ),
        _ => format!(
            "expected a duration string, found {}; {DURATION_HELP}",
            found(cx, v)
        ),
    };
    cx.error(at, field, message);
    None
}

fn overrun(
    cx: &mut Diagnostics<'_>,
    field: &str,
    v: &Spanned<DeValue<'_>>,
) -> Option<At<RawOverrun>> {
    policy(
        cx,
        field,
        v,
        "an overrun policy",
        &[
            ("report", RawOverrun::Report),
            ("skip-next", RawOverrun::SkipNext),
        ],
        RawOverrun::Escalate,
    )
}

/// `on_fault`: like `overrun`'s `report` and `escalate:<mode>` (a fault has no time to
/// give back, so there is no `skip-next`).
fn on_fault(
    cx: &mut Diagnostics<'_>,
    field: &str,
    v: &Spanned<DeValue<'_>>,
) -> Option<At<RawFault>> {
    policy(
        cx,
        field,
        v,
        "a fault policy",
        &[("report", RawFault::Report)],
        RawFault::Escalate,
    )
}

/// A policy string: one of the `plain` words, or `escalate:<mode>` (the mode resolved
/// later). `what` names the policy in the error, which lists every allowed form.
fn policy<T: Clone>(
    cx: &mut Diagnostics<'_>,
    field: &str,
    v: &Spanned<DeValue<'_>>,
    what: &str,
    plain: &[(&str, T)],
    escalate: fn(String) -> T,
) -> Option<At<T>> {
    let s = string(cx, field, v)?;
    let text = s.value.trim();
    if let Some((_, value)) = plain.iter().find(|(word, _)| *word == text) {
        return Some(At {
            value: value.clone(),
            at: s.at,
        });
    }
    match text.strip_prefix("escalate:").map(str::trim) {
        Some(mode) if !mode.is_empty() => Some(At {
            value: escalate(mode.to_string()),
            at: s.at,
        }),
        Some(_) => {
            cx.error(
                s.at,
                field,
                "`escalate:` needs the mode to switch to, e.g. \"escalate:degraded\"",
            );
            None
        }
        None => {
            let allowed: Vec<String> = plain
                .iter()
                .map(|(word, _)| format!("\"{word}\""))
                .chain(std::iter::once("\"escalate:<mode name>\"".to_string()))
                .collect();
            cx.error(
                s.at,
                field,
                format!(
                    "{:?} is not {what}; allowed: {}",
                    s.value,
                    allowed.join(", ")
                ),
            );
            None
        }
    }
}

/// `[task.topics]`: a table of declared port topic → topic name. Whether a key is a port of
/// the implementation is `validate`'s to say; here each value must be a usable topic name.
fn topic_map(cx: &mut Diagnostics<'_>, field: &str, v: &Spanned<DeValue<'_>>) -> Vec<RawTopicMap> {
    let DeValue::Table(t) = v.get_ref() else {
        expected(
            cx,
            field,
            v,
            "a table: write [task.topics] or topics = { radar_track = \"radar_front_track\" }",
        );
        return Vec::new();
    };
    let mut out = Vec::with_capacity(t.len());
    for (key, value) in t.iter() {
        let item_field = format!("{field}.{}", key.get_ref());
        let Some(topic) = string(cx, &item_field, value) else {
            continue;
        };
        if let Some(problem) = name_problem(&topic.value) {
            cx.error(
                topic.at,
                item_field,
                format!(
                    "topic name {:?} {problem}; names use only A-Z, a-z, 0-9, `_` and `-`, 1 to {MAX_NAME_CHARS} characters",
                    topic.value
                ),
            );
            continue;
        }
        out.push(RawTopicMap {
            declared: At {
                value: key.get_ref().to_string(),
                at: key.span().start,
            },
            topic,
        });
    }
    out
}

/// `[task.params]`: integers, floats, booleans, strings and arrays of one of those; anything
/// else is reported.
fn params(
    cx: &mut Diagnostics<'_>,
    field: &str,
    v: &Spanned<DeValue<'_>>,
) -> BTreeMap<String, At<ParamValue>> {
    let mut out = BTreeMap::new();
    let DeValue::Table(t) = v.get_ref() else {
        expected(
            cx,
            field,
            v,
            "a table: write [task.params] or params = { key = value }",
        );
        return out;
    };
    for (key, value) in t.iter() {
        let key_text: &str = key.get_ref();
        let item_field = format!("{field}.{key_text}");
        let param = match value.get_ref() {
            DeValue::Array(items) => {
                let mut elements = Vec::new();
                let mut ok = true;
                for item in items.iter() {
                    match scalar_param(cx, &item_field, item) {
                        Some(p) => elements.push(p),
                        None => ok = false,
                    }
                }
                // Integers and floats mix: `[0.5, 1]` is an array of numbers.
                let class = |p: &ParamValue| match p {
                    ParamValue::Int(_) => "float",
                    other => other.kind_name(),
                };
                let mixed = elements.windows(2).any(|w| class(&w[0]) != class(&w[1]));
                if mixed {
                    cx.error(
                        value.span().start,
                        &item_field,
                        "the array mixes element types; an array parameter holds one type (all integers, all floats, all booleans or all strings)",
                    );
                    ok = false;
                }
                ok.then_some(ParamValue::Array(elements))
            }
            _ => scalar_param(cx, &item_field, value),
        };
        if let Some(p) = param {
            out.insert(
                key_text.to_string(),
                At {
                    value: p,
                    at: value.span().start,
                },
            );
        }
    }
    out
}

fn scalar_param(
    cx: &mut Diagnostics<'_>,
    item_field: &str,
    value: &Spanned<DeValue<'_>>,
) -> Option<ParamValue> {
    match value.get_ref() {
        DeValue::Integer(_) => integer(cx, item_field, value).map(|n| ParamValue::Int(n.value)),
        DeValue::Float(f) => {
            if f.as_str().parse::<f64>().is_ok() {
                Some(ParamValue::Float(f.as_str().to_string()))
            } else {
                cx.error(
                    value.span().start,
                    item_field,
                    format!("the float {} is not a 64-bit float", f.as_str()),
                );
                None
            }
        }
        DeValue::Boolean(b) => Some(ParamValue::Bool(*b)),
        DeValue::String(s) => Some(ParamValue::Str(s.to_string())),
        _ => {
            expected(
                cx,
                item_field,
                value,
                "an integer, float, boolean or string, or an array of one of those (arrays hold scalars, no tables)",
            );
            None
        }
    }
}

/// Most candidates one suggestion compares against (each costs an edit distance).
const MAX_SUGGESTION_CANDIDATES: usize = 1024;

/// The candidate closest to `word` by edit distance, if it is a plausible typo.
pub(super) fn closest<'c>(
    word: &str,
    candidates: impl Iterator<Item = &'c str>,
) -> Option<&'c str> {
    // Distances on long strings cost quadratic time and never suggest anything useful.
    if word.chars().count() > MAX_NAME_CHARS {
        return None;
    }
    let limit = match word.chars().count() {
        0..=3 => 1,
        _ => 2,
    };
    candidates
        .take(MAX_SUGGESTION_CANDIDATES)
        .filter(|c| c.chars().count() <= MAX_NAME_CHARS)
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

//! The validated deployment model: what a manifest means once every rule has passed.
//!
//! Everything downstream (`plan`, `dispatch`, the CLI) works on these types, never on TOML.
//! All durations are integer nanoseconds; names carry their unit (`period_ns`).

use std::collections::BTreeMap;

/// Index of a task in [`Deployment::tasks`].
pub type TaskId = usize;

/// What the dispatcher does when a job runs longer than its budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum OverrunPolicy {
    /// Record the overrun and keep releasing every job.
    Report,
    /// Record the overrun and drop the task's next job, to give the core its time back.
    SkipNext,
    /// Record the overrun and request a switch to the named mode at the next hyperperiod
    /// boundary (the mode index into [`Deployment::modes`]).
    Escalate(usize),
}

/// What the dispatcher does when a job reports a fault (`StepContext::fault`): `on_fault`.
/// The fault is counted, traced and reported to the supervisor's health either way.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum FaultPolicy {
    /// Record the fault and go on (`on_fault = "report"`, the default).
    #[default]
    Report,
    /// Record the fault and request a switch to the named mode at the next hyperperiod
    /// boundary (`on_fault = "escalate:<mode>"`; the mode index into
    /// [`Deployment::modes`]), through the same request an overrun escalation makes.
    Escalate(usize),
}

/// One periodic task: where it runs, when it is released, how long it may run.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskSpec {
    /// The instance name: what channels, chains, modes, traces and reports call the task.
    pub name: String,
    /// The task implementation this instance runs (`impl` in TOML; the instance name when
    /// absent): the registry entry whose constructor builds it and whose declared ports and
    /// parameters it is checked against.
    pub implementation: String,
    /// `[task.topics]`: declared port topic of the implementation → the topic this instance
    /// uses instead. Ports not listed keep their declared topic. Every key is a declared port
    /// of the implementation and every value a valid topic name.
    pub topics: BTreeMap<String, String>,
    /// Index into [`Deployment::apps`].
    pub app: usize,
    pub period_ns: u64,
    /// Release offset inside the period, `0 <= offset_ns < period_ns`.
    pub offset_ns: u64,
    /// Worst-case execution time the plan reserves for every job.
    pub budget_ns: u64,
    /// Logical execution time window: outputs become visible at `release + let_ns`.
    /// `budget_ns <= let_ns <= period_ns`.
    pub let_ns: u64,
    /// Logical CPU the task is pinned to.
    pub core: usize,
    pub overrun: OverrunPolicy,
    /// What a job's fault report leads to (`on_fault`).
    pub on_fault: FaultPolicy,
    /// Free-form parameters for the task constructor (`[task.params]` in TOML).
    pub params: BTreeMap<String, ParamValue>,
    /// 1-based line of the task's table in the manifest, for errors found later (plan).
    pub line: usize,
}

/// A constructor parameter from `[task.params]`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ParamValue {
    Int(i64),
    /// Floats are kept as their text so the model stays `Eq` and bit-exact.
    Float(String),
    Bool(bool),
    Str(String),
    /// An array of scalars of one kind (`[1.0, 2.5]`, `["a", "b"]`).
    Array(Vec<ParamValue>),
}

impl ParamValue {
    /// The TOML type, as messages name it.
    pub fn kind_name(&self) -> &'static str {
        match self {
            ParamValue::Int(_) => "integer",
            ParamValue::Float(_) => "float",
            ParamValue::Bool(_) => "boolean",
            ParamValue::Str(_) => "string",
            ParamValue::Array(_) => "array",
        }
    }
}

/// The type of a declared parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ParamKind {
    Bool,
    Int,
    /// Integers are accepted too.
    Float,
    Str,
    /// An array whose every element has the given scalar kind.
    Array(ScalarKind),
}

/// The element kind of an array parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ScalarKind {
    Bool,
    Int,
    Float,
    Str,
}

impl ParamKind {
    pub fn name(&self) -> String {
        let scalar = |k: &ScalarKind| match k {
            ScalarKind::Bool => "boolean",
            ScalarKind::Int => "integer",
            ScalarKind::Float => "float",
            ScalarKind::Str => "string",
        };
        match self {
            ParamKind::Bool => "boolean".into(),
            ParamKind::Int => "integer".into(),
            ParamKind::Float => "float".into(),
            ParamKind::Str => "string".into(),
            ParamKind::Array(k) => format!("array of {}s", scalar(k)),
        }
    }
}

/// A parameter a task implementation declares: name, type, default and allowed range.
/// Declared parameters are part of the app's catalog, so `takt check` refuses a manifest
/// value of the wrong type or out of range, and an unknown or missing parameter.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ParamDecl {
    pub name: String,
    pub kind: ParamKind,
    /// `None`: the manifest must give it.
    pub default: Option<ParamValue>,
    /// Inclusive bounds for numbers (every element of a numeric array).
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// An application: the unit that is deployed, restarted and updated together.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AppSpec {
    pub name: String,
    /// Executable that hosts the app's tasks in multi-process mode (optional until the
    /// supervisor exists; the single-process runtime links the tasks directly).
    #[serde(skip)]
    pub executable: Option<String>,
    /// Restart policy and escalation (lifecycle manager).
    #[serde(skip)]
    pub supervision: Supervision,
}

/// When the lifecycle manager restarts an app's process after it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// Never: an app that ends early is `failed` (or `stopped` after a clean exit).
    Never,
    /// After a crash, a signal or a non-zero exit, not after a clean exit.
    #[default]
    OnFailure,
    /// After any end before the run's end.
    Always,
}

/// What the lifecycle manager does when an app fails for good (restart policy `never`, or
/// more than `max_restarts` restarts within `restart_window_ns`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Escalation {
    /// Stop every app at the next hyperperiod boundary; the run fails.
    #[default]
    Stop,
    /// Switch every core to this mode (index into [`Deployment::modes`]) and go on.
    Mode(usize),
}

/// An app's supervision: `restart`, `max_restarts`, `restart_window` and `escalate` in its
/// `[[app]]` table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Supervision {
    pub restart: RestartPolicy,
    /// Most restarts within any `restart_window_ns`; one more escalates.
    pub max_restarts: u32,
    pub restart_window_ns: u64,
    pub escalate: Escalation,
}

impl Default for Supervision {
    fn default() -> Self {
        Supervision {
            restart: RestartPolicy::OnFailure,
            max_restarts: 3,
            restart_window_ns: 60_000_000_000,
            escalate: Escalation::Stop,
        }
    }
}

/// A topic with exactly one writer and any number of readers.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChannelSpec {
    pub topic: String,
    /// Message type name, resolved against the type catalog.
    pub type_name: String,
    pub writer: TaskId,
    pub readers: Vec<TaskId>,
}

/// A declared cause-effect chain: tasks linked by channels, first is the sensor end.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChainSpec {
    pub name: String,
    pub tasks: Vec<TaskId>,
    /// Topics linking `tasks[i]` to `tasks[i + 1]`.
    pub topics: Vec<String>,
    /// When true the plan must place each producer job's window before the consumer job
    /// released at the same instant on the same core.
    pub precedence: bool,
    /// Requirement on the chain's exact LET data age bound (`max_data_age`): a plan whose
    /// bound exceeds it is refused. `None`: no requirement. Never `Some(0)`.
    pub max_data_age_ns: Option<u64>,
    /// Requirement on the chain's exact LET reaction time bound (`max_reaction`), as
    /// `max_data_age_ns`.
    pub max_reaction_ns: Option<u64>,
}

/// An operating mode: the set of tasks released while it is active.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModeSpec {
    pub name: String,
    pub tasks: Vec<TaskId>,
}

/// A fully validated deployment.
///
/// Its serde form is the app processes' copy in the host plan
/// (`lifecycle::host_plan`): the parts only the supervisor acts on (`[ota]`, update-safe
/// modes, an app's executable and supervision) are skipped, so they can grow without
/// changing what an app executable decodes. Any other change of these types changes that
/// wire form: bump `catalog::API_VERSION`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Deployment {
    pub name: String,
    /// Path the manifest was read from (for messages).
    pub source: String,
    /// Cores the deployment may use.
    pub cores: Vec<usize>,
    /// SCHED_FIFO priority of the dispatcher threads (1..=99).
    pub priority: u8,
    pub apps: Vec<AppSpec>,
    pub tasks: Vec<TaskSpec>,
    pub channels: Vec<ChannelSpec>,
    pub chains: Vec<ChainSpec>,
    pub modes: Vec<ModeSpec>,
    /// Index into `modes` of the mode active at start.
    pub default_mode: usize,
    /// Modes in which an update may be activated (OTA). Indices into `modes`.
    #[serde(skip)]
    pub update_safe_modes: Vec<usize>,
    /// LCM of all task periods: the length of one table cycle in every mode.
    pub hyperperiod_ns: u64,
    /// Over-the-air updates: trusted signing keys, probation window, state directory
    /// (`[ota]`; all defaults when the table is absent).
    #[serde(skip)]
    pub ota: OtaSpec,
    /// How the dispatchers wake for their windows (`[deployment] wake`, per core
    /// `[deployment.wake_by_core]`).
    pub wake: WakeSpec,
}

/// How a dispatcher reaches a window's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Wake {
    /// Sleep until the start (`clock_nanosleep(TIMER_ABSTIME)`): the kernel's wake-up
    /// latency is the release lateness.
    #[default]
    Sleep,
    /// Sleep until `margin_ns` before the start, then spin on the clock to the start: the
    /// release is as late as the clock read, as long as the kernel wakes the thread within
    /// the margin. The spinning is busy time on the core, which the plan counts.
    Spin { margin_ns: u64 },
}

impl Wake {
    /// The spin margin (0 for sleeping).
    pub fn margin_ns(self) -> u64 {
        match self {
            Wake::Sleep => 0,
            Wake::Spin { margin_ns } => margin_ns,
        }
    }
}

/// The deployment's wake-up choice and its per-core overrides.
#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct WakeSpec {
    /// Every core's, unless overridden.
    pub default: Wake,
    /// Core number to its own choice; every key is one of the deployment's cores.
    pub by_core: BTreeMap<usize, Wake>,
}

impl WakeSpec {
    /// What core `core` does.
    pub fn for_core(&self, core: usize) -> Wake {
        self.by_core.get(&core).copied().unwrap_or(self.default)
    }
}

/// The `[ota]` table: what an update of this deployment must be signed with, how long a
/// new version is watched before it is kept, and where update state lives.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OtaSpec {
    /// ed25519 public keys whose bundles may be staged (32 bytes each), in manifest order.
    /// Each is a valid curve point and none is listed twice. Empty: no bundle can be staged.
    pub trusted_keys: Vec<[u8; 32]>,
    /// How long a newly activated version must run clean before it is committed.
    pub probation: Probation,
    /// Where slots and journals live; relative paths are resolved against the manifest's
    /// directory. None: the CLI decides.
    pub state_dir: Option<std::path::PathBuf>,
    /// `[[ota.key]]`: signing keys with the apps each may sign (`None`: every app), after
    /// `trusted_keys` (which may sign every app). No key is in both.
    pub scoped_keys: Vec<([u8; 32], Option<Vec<String>>)>,
    /// `root_keys`: keys that sign key documents (rotation, revocation), never bundles.
    pub root_keys: Vec<[u8; 32]>,
    /// What probation holds against a new version (see [`ProbationLimits`]).
    pub limits: ProbationLimits,
}

/// The thresholds of probation. Only misses attributed to the version itself count (see
/// `dispatch::attribution`); the platform's are reported, never held against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbationLimits {
    /// `probation_max_overruns`: overruns, skips and deadline misses attributed to takt or
    /// the task that a new version may show in its window and still be committed.
    pub max_overruns: u64,
    /// `probation_max_faults`: jobs of the new version that may report a fault
    /// (`StepContext::fault`) in its window before it is rolled back and marked bad.
    pub max_faults: u64,
    /// `probation_exec_p99_max_percent`: the new version's p99 CPU time per job (as a
    /// fraction of the budget) may be at most this percentage of the replaced version's,
    /// measured before the switch.
    pub exec_p99_max_percent: u64,
    /// `probation_heartbeat_timeout`: how long the supervisor may see no heartbeat of the
    /// new version, not counting time the supervisor itself was late, before rolling it
    /// back. `None`: three hyperperiods, at least 200 ms.
    pub heartbeat_timeout_ns: Option<u64>,
}

impl Default for ProbationLimits {
    fn default() -> Self {
        ProbationLimits {
            max_overruns: 0,
            max_faults: 0,
            exec_p99_max_percent: DEFAULT_EXEC_P99_MAX_PERCENT,
            heartbeat_timeout_ns: None,
        }
    }
}

/// The default of `probation_exec_p99_max_percent`: twice the replaced version's p99.
pub const DEFAULT_EXEC_P99_MAX_PERCENT: u64 = 200;

impl ProbationLimits {
    /// The heartbeat timeout for a deployment with hyperperiod `hyperperiod_ns`.
    pub fn heartbeat_timeout_ns(&self, hyperperiod_ns: u64) -> u64 {
        self.heartbeat_timeout_ns
            .unwrap_or_else(|| hyperperiod_ns.saturating_mul(3).max(200_000_000))
    }
}

/// A probation window: a count of hyperperiods, or a duration the supervisor rounds up to
/// whole hyperperiods (it watches and commits only at hyperperiod boundaries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probation {
    /// `probation_hyperperiods = N`.
    Hyperperiods(u64),
    /// `probation = "1s"`.
    Duration { ns: u64 },
}

impl Default for Probation {
    /// 25 hyperperiods: long enough to see a full cycle of every mode's table many times,
    /// short enough (0.5 s for a 20 ms hyperperiod) not to hold an update back.
    fn default() -> Self {
        Probation::Hyperperiods(DEFAULT_PROBATION_HYPERPERIODS)
    }
}

/// The probation window when the manifest declares none.
pub const DEFAULT_PROBATION_HYPERPERIODS: u64 = 25;

impl Probation {
    /// The window in whole hyperperiods of `hyperperiod_ns`, at least 1: a duration is
    /// rounded up, so the version is watched for at least as long as declared, and a
    /// window of zero would commit a version nobody watched. A `hyperperiod_ns` of 0 (no
    /// validated deployment has one) is taken as 1 ns rather than divided by.
    pub fn hyperperiods(&self, hyperperiod_ns: u64) -> u64 {
        match *self {
            Probation::Hyperperiods(n) => n.max(1),
            Probation::Duration { ns } => ns.div_ceil(hyperperiod_ns.max(1)).max(1),
        }
    }
}

impl TaskSpec {
    /// The topic this instance uses for its implementation's port declared on `declared`.
    pub fn topic<'a>(&'a self, declared: &'a str) -> &'a str {
        self.topics.get(declared).map_or(declared, String::as_str)
    }
}

impl Deployment {
    pub fn task_id(&self, name: &str) -> Option<TaskId> {
        self.tasks.iter().position(|t| t.name == name)
    }

    pub fn mode_id(&self, name: &str) -> Option<usize> {
        self.modes.iter().position(|m| m.name == name)
    }

    pub fn channel(&self, topic: &str) -> Option<&ChannelSpec> {
        self.channels.iter().find(|c| c.topic == topic)
    }
}

/// A message type's layout fingerprint; it belongs to the port layer, which computes it.
pub use crate::port::Fingerprint;

/// The port signature a task implementation declares at registration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskSignature {
    /// `(topic, type name)` pairs the task reads.
    pub reads: Vec<(String, &'static str)>,
    /// `(topic, type name)` pairs the task writes.
    pub writes: Vec<(String, &'static str)>,
    /// Declared parameters. Empty: the implementation declares none, and `[task.params]`
    /// is passed through unchecked (its constructor reads what it needs).
    pub params: Vec<ParamDecl>,
}

/// What the linked code knows: message types and task implementations. Validation checks
/// the manifest against it (unknown types, unknown task implementations, type mismatches).
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub types: BTreeMap<&'static str, Fingerprint>,
    pub tasks: BTreeMap<String, TaskSignature>,
    /// Task implementation → the apps whose executables declare it. Empty for a registry
    /// linked into one process (it hosts every task it has); filled from executables'
    /// catalogs, where a task must belong to an app that implements it.
    pub owners: BTreeMap<String, Vec<String>>,
}

/// Hard bounds the validator enforces so plans and tables stay small and finite.
pub mod limits {
    /// Longest accepted hyperperiod: 10 s.
    pub const MAX_HYPERPERIOD_NS: u64 = 10_000_000_000;
    /// Most jobs one core's table may hold per hyperperiod.
    pub const MAX_JOBS_PER_CORE: usize = 100_000;
    /// Shortest accepted period: 100 us.
    pub const MIN_PERIOD_NS: u64 = 100_000;
    /// Most tasks in one manifest.
    pub const MAX_TASKS: usize = 4096;
    /// Most modes in one manifest: a mode is a bit of the 64-bit update-safe mask the
    /// dispatchers test, and a byte of the packed word they decide cycles with (whose two
    /// highest values mean stop and no request).
    pub const MAX_MODES: usize = 64;
    /// Highest core number a deployment may use: a trace record names its core in one byte.
    pub const MAX_CORE: usize = 255;
    /// Most apps in one manifest: the supervisor's shared control block has one health
    /// record per app, and a handover names its app in one byte.
    pub const MAX_APPS: usize = 64;
    /// Largest manifest file read: 1 MiB.
    pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;
    /// Longest OTA probation window a manifest may declare as a duration: 1 hour.
    pub const MAX_PROBATION_NS: u64 = 3_600_000_000_000;
    /// Most hyperperiods an OTA probation window may declare.
    pub const MAX_PROBATION_HYPERPERIODS: u64 = 100_000;
    /// Largest `probation_max_overruns`.
    pub const MAX_PROBATION_OVERRUNS: u64 = 1_000_000;
    /// Most faulted jobs `probation_max_faults` may allow.
    pub const MAX_PROBATION_FAULTS: u64 = 1_000_000;
    /// `probation_exec_p99_max_percent` range: at least 100 (no faster than the old one
    /// is asked), at most 10000 (100 times).
    pub const MIN_EXEC_P99_PERCENT: u64 = 100;
    pub const MAX_EXEC_P99_PERCENT: u64 = 10_000;
    /// Longest spin margin of `wake = { spin = ... }`: 1 ms (a kernel that wakes a
    /// SCHED_FIFO thread later than that is stalled, not slow).
    pub const MAX_SPIN_MARGIN_NS: u64 = 1_000_000;
    /// `probation_heartbeat_timeout` range: 10 ms to 1 minute.
    pub const MIN_HEARTBEAT_TIMEOUT_NS: u64 = 10_000_000;
    pub const MAX_HEARTBEAT_TIMEOUT_NS: u64 = 60_000_000_000;
}

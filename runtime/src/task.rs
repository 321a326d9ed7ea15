//! The `Task` trait, the context a job sees, and the registry of task constructors.
//!
//! Owns: what an app developer writes. A task is a plain struct that opens its typed ports
//! once, in its constructor (through a [`TaskBuilder`]), and then does one job per release
//! in [`Task::step`]. `step` must not allocate, lock or block: the dispatcher calls it on a
//! pinned SCHED_FIFO thread. A job that detects a fault reports it with
//! [`StepContext::fault`] (see there). This module never touches TOML, threads or the
//! schedule.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;

use crate::manifest::{
    Catalog, Fingerprint, ParamDecl, ParamKind, ParamValue, ScalarKind, TaskSignature,
};
use crate::port::layout::TypeLayout;
use crate::port::{ActivityCell, Connector, PortNode, PortOpenError, Sizing};

// What a task author needs, in one place.
pub use crate::port::{Message, Reader, Sampled, Writer};
use crate::time::JobTime;

/// A fault code a task reports with [`StepContext::fault`]. What a code means is the app's
/// own business (a sensor timeout, a failed plausibility check, ...): takt counts, traces
/// and reports codes, it never interprets them.
pub type FaultCode = u16;

/// What a job sees: its logical times and index, and where it reports a fault. Ports take
/// it to stamp LET visibility (writers) and to pick the sample valid at the release
/// (readers).
///
/// A fresh context is made for every job, so fault reports never leak into the next job.
#[derive(Clone, Debug)]
pub struct StepContext {
    job: JobTime,
    /// Fault reports of this job so far (saturating).
    fault_reports: Cell<u32>,
    /// The code of the first report (meaningful when `fault_reports > 0`).
    first_fault: Cell<FaultCode>,
}

impl StepContext {
    pub fn new(job: JobTime) -> Self {
        StepContext {
            job,
            fault_reports: Cell::new(0),
            first_fault: Cell::new(0),
        }
    }
    /// Logical release instant, nanoseconds since the epoch.
    pub fn release_ns(&self) -> u64 {
        self.job.release_ns
    }
    /// Logical deadline (release + LET): when this job's outputs become visible.
    pub fn deadline_ns(&self) -> u64 {
        self.job.deadline_ns
    }
    /// The job's index in its task's releases, counted from the epoch.
    pub fn job_index(&self) -> u64 {
        self.job.index
    }
    pub fn job(&self) -> &JobTime {
        &self.job
    }

    /// Reports a fault of this job: the task detected something wrong (a sensor timed out,
    /// a plausibility check failed) and goes on. `code` is the app's own: takt never
    /// interprets it, it counts the job as faulted, traces it, reports it per task in the
    /// run summary and to the supervisor's health record, and applies the task's `on_fault`
    /// policy after the job.
    ///
    /// Several reports in one job: the job counts once as a faulted job, the reports are
    /// counted, and the **first** code is the job's code (the first thing that went wrong
    /// is usually the cause of the rest). Allowed on the hot path: two `Cell` writes, no
    /// allocation, no lock, no syscall.
    pub fn fault(&self, code: FaultCode) {
        let n = self.fault_reports.get();
        if n == 0 {
            self.first_fault.set(code);
        }
        self.fault_reports.set(n.saturating_add(1));
    }

    /// How many faults this job has reported so far.
    pub fn faults_reported(&self) -> u32 {
        self.fault_reports.get()
    }

    /// The code of this job's first fault report, `None` while it reported none.
    pub fn first_fault(&self) -> Option<FaultCode> {
        (self.fault_reports.get() > 0).then(|| self.first_fault.get())
    }
}

impl std::ops::Deref for StepContext {
    type Target = JobTime;
    fn deref(&self) -> &JobTime {
        &self.job
    }
}

/// What a task reports after the run: human-readable outcome lines and its contribution to
/// the deployment's output digest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskReport {
    /// `(key, value)` lines for the run summary, e.g. `("min_gap_m", "12.3")`.
    pub outcome: Vec<(String, String)>,
    /// Bytes folded into the run's `digest:`. Tasks put a hash of every output they
    /// produced here; the runtime combines all tasks' contributions in task-name order.
    pub digest: Option<[u8; 32]>,
}

/// A periodic job body. See the module docs for what `step` may and may not do.
///
/// Tasks are not required to be `Send`: iceoryx2's single-threaded `ipc` ports are not, so the
/// dispatcher constructs every task on the pinned thread that will run it, and it stays there.
pub trait Task {
    /// One job: read inputs as of `ctx.release_ns()`, publish outputs (visible at
    /// `ctx.deadline_ns()`), and report a detected fault with `ctx.fault(code)`.
    fn step(&mut self, ctx: &StepContext);

    /// Called once after the last job, off the real-time path.
    fn finish(&mut self, _report: &mut TaskReport) {}
}

/// How a task reaches one topic: the resolved type and buffer sizes from manifest + plan.
#[derive(Clone, Debug)]
pub struct PortBinding {
    pub topic: String,
    /// Fingerprint of the type the manifest's channel carries.
    pub fingerprint: Fingerprint,
    pub sizing: Sizing,
    /// True if this task is the channel's writer.
    pub is_writer: bool,
}

/// Why a task could not be constructed.
#[derive(Debug)]
pub enum TaskBuildError {
    /// The task opened a topic that the manifest does not connect it to.
    UnboundPort {
        task: String,
        topic: String,
        role: &'static str,
    },
    Port(PortOpenError),
    /// A `[task.params]` entry is missing or has the wrong type.
    Param {
        task: String,
        name: String,
        reason: String,
    },
    /// No constructor is registered under this task implementation name.
    UnknownTask {
        task: String,
        known: Vec<String>,
    },
    /// The constructor itself refused.
    Other {
        task: String,
        reason: String,
    },
}

impl fmt::Display for TaskBuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskBuildError::UnboundPort { task, topic, role } => write!(
                f,
                "task `{task}` opens a {role} on topic `{topic}`, but the manifest has no channel connecting it there as {role}"
            ),
            TaskBuildError::Port(e) => write!(f, "{e}"),
            TaskBuildError::Param { task, name, reason } => {
                write!(f, "task `{task}`: parameter `{name}`: {reason}")
            }
            TaskBuildError::UnknownTask { task, known } => write!(
                f,
                "no task implementation is registered under the name `{task}`; registered: {}",
                known.join(", ")
            ),
            TaskBuildError::Other { task, reason } => write!(f, "task `{task}`: {reason}"),
        }
    }
}

impl std::error::Error for TaskBuildError {}

impl From<PortOpenError> for TaskBuildError {
    fn from(e: PortOpenError) -> Self {
        TaskBuildError::Port(e)
    }
}

/// The timing the manifest gives a task, as its constructor sees it (all in nanoseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskTiming {
    pub period_ns: u64,
    pub offset_ns: u64,
    pub budget_ns: u64,
    pub let_ns: u64,
}

/// Handed to a task constructor: opens the task's ports and reads its parameters.
///
/// A constructor opens ports by the topics its implementation declares
/// ([`Ports::reads`]/[`Ports::writes`]); the builder resolves each through the instance's
/// `[task.topics]` mapping, so one implementation serves several instances on different
/// topics without knowing it.
pub struct TaskBuilder<'a> {
    task: &'a str,
    /// The task implementation being built (the instance name unless the manifest says `impl`).
    implementation: &'a str,
    /// Declared topic → this instance's topic; empty: every port on its declared topic.
    topics: Option<&'a BTreeMap<String, String>>,
    node: &'a PortNode,
    ports: &'a [PortBinding],
    params: &'a BTreeMap<String, ParamValue>,
    timing: TaskTiming,
    probes: std::cell::RefCell<Vec<PortProbe>>,
}

/// A port a task opened, with the cell its activity is reported in. The dispatcher takes
/// these from the builder after construction to trace publishes and reads.
///
/// Internal to takt (the dispatcher's tracing), never part of the app API.
#[derive(Clone)]
pub(crate) struct PortProbe {
    pub topic: String,
    pub is_writer: bool,
    pub activity: ActivityCell,
    /// The port's iceoryx2 end, connected by the dispatcher before the first release.
    pub connect: Connector,
}

impl<'a> TaskBuilder<'a> {
    /// Only the dispatcher builds tasks: an app gets a builder in its constructor, never
    /// makes one (its ports would bypass the plan's sizing and the dispatcher's tracing).
    pub(crate) fn new(
        task: &'a str,
        node: &'a PortNode,
        ports: &'a [PortBinding],
        params: &'a BTreeMap<String, ParamValue>,
        timing: TaskTiming,
    ) -> Self {
        TaskBuilder {
            task,
            implementation: task,
            topics: None,
            node,
            ports,
            params,
            timing,
            probes: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// Builds an instance of `implementation` whose ports declared on a key of `topics` use
    /// the mapped topic instead (`[task.topics]`).
    pub(crate) fn instance_of(
        mut self,
        implementation: &'a str,
        topics: &'a BTreeMap<String, String>,
    ) -> Self {
        self.implementation = implementation;
        self.topics = Some(topics);
        self
    }

    /// A builder outside any dispatcher, for tests that build and step a task by hand
    /// (with `test-hooks` only, which never reaches a shipped binary).
    #[cfg(feature = "test-hooks")]
    #[doc(hidden)]
    pub fn detached(
        task: &'a str,
        node: &'a PortNode,
        ports: &'a [PortBinding],
        params: &'a BTreeMap<String, ParamValue>,
        timing: TaskTiming,
    ) -> Self {
        TaskBuilder::new(task, node, ports, params, timing)
    }

    /// The ports the task opened so far, with their activity cells.
    pub(crate) fn take_probes(&self) -> Vec<PortProbe> {
        std::mem::take(&mut *self.probes.borrow_mut())
    }

    fn probe(&self, topic: &str, is_writer: bool, connect: Connector) -> ActivityCell {
        let cell = ActivityCell::default();
        self.probes.borrow_mut().push(PortProbe {
            topic: topic.to_string(),
            is_writer,
            activity: cell.clone(),
            connect,
        });
        cell
    }

    /// The task's period, offset, budget and LET window from the manifest. A task that
    /// integrates over time (a simulation, a filter) takes its step length from here.
    pub fn timing(&self) -> TaskTiming {
        self.timing
    }

    /// The manifest name of the task being built: the instance name, which traces, reports
    /// and the digest use.
    pub fn task_name(&self) -> &str {
        self.task
    }

    /// The task implementation being built (`impl` in the manifest; the task name when the
    /// manifest gives none). Several instances of one implementation share it.
    pub fn impl_name(&self) -> &str {
        self.implementation
    }

    /// The topic this instance uses for the port its implementation declares on `declared`.
    pub fn topic<'t>(&'t self, declared: &'t str) -> &'t str {
        self.topics
            .and_then(|m| m.get(declared))
            .map_or(declared, String::as_str)
    }

    fn binding(&self, topic: &str, is_writer: bool) -> Result<&PortBinding, TaskBuildError> {
        self.ports
            .iter()
            .find(|p| p.topic == topic && p.is_writer == is_writer)
            .ok_or_else(|| TaskBuildError::UnboundPort {
                task: self.task.to_string(),
                topic: topic.to_string(),
                role: if is_writer { "writer" } else { "reader" },
            })
    }

    /// Opens the writer of `topic` (a topic the implementation declares; the instance's
    /// `[task.topics]` may map it to another). The manifest must name this task as the
    /// channel's writer.
    pub fn writer<T: Message>(&self, topic: &str) -> Result<Writer<T>, TaskBuildError> {
        let topic = self.topic(topic);
        let b = self.binding(topic, true)?;
        let mut w = self.node.writer::<T>(topic, &b.fingerprint, b.sizing)?;
        w.attach_activity(self.probe(topic, true, w.connector()));
        Ok(w)
    }

    /// Opens a reader of `topic` (declared by the implementation, resolved through the
    /// instance's `[task.topics]` like [`writer`](Self::writer)). The manifest must list this
    /// task among the channel's readers.
    pub fn reader<T: Message>(&self, topic: &str) -> Result<Reader<T>, TaskBuildError> {
        let topic = self.topic(topic);
        let b = self.binding(topic, false)?;
        let mut r = self.node.reader::<T>(topic, &b.fingerprint, b.sizing)?;
        r.attach_activity(self.probe(topic, false, r.connector()));
        Ok(r)
    }

    fn param_err(&self, name: &str, reason: String) -> TaskBuildError {
        TaskBuildError::Param {
            task: self.task.to_string(),
            name: name.to_string(),
            reason,
        }
    }

    /// A float parameter (integers are accepted too), or `default` when absent.
    pub fn param_f64(&self, name: &str, default: f64) -> Result<f64, TaskBuildError> {
        match self.params.get(name) {
            None => Ok(default),
            Some(ParamValue::Int(i)) => Ok(*i as f64),
            Some(ParamValue::Float(s)) => s
                .parse()
                .map_err(|_| self.param_err(name, format!("`{s}` is not a number"))),
            Some(other) => Err(self.param_err(name, format!("expected a number, found {other:?}"))),
        }
    }

    /// A float parameter (an integer is accepted too) in `min..=max`, or `default` when
    /// absent. A value outside the range, or NaN, is refused naming the task, the parameter
    /// and the allowed range.
    pub fn param_f64_in(
        &self,
        name: &str,
        default: f64,
        min: f64,
        max: f64,
    ) -> Result<f64, TaskBuildError> {
        let value = self.param_f64(name, default)?;
        // `!(a && b)` rather than `!range.contains` so that NaN is refused too.
        if !(value >= min && value <= max) {
            return Err(self.param_err(
                name,
                format!("{value} is out of range; allowed is {min} to {max}"),
            ));
        }
        Ok(value)
    }

    /// A duration parameter given in milliseconds (float or integer) in `min_ms..=max_ms`,
    /// returned in nanoseconds (rounded to the nearest).
    pub fn param_ms_in_ns(
        &self,
        name: &str,
        default_ms: f64,
        min_ms: f64,
        max_ms: f64,
    ) -> Result<u64, TaskBuildError> {
        let ms = self.param_f64_in(name, default_ms, min_ms, max_ms)?;
        Ok((ms * 1e6 + 0.5) as u64)
    }

    /// A seed: any non-negative integer, or `default` when absent.
    pub fn param_seed(&self, name: &str, default: u64) -> Result<u64, TaskBuildError> {
        let value = self.param_i64(name, i64::try_from(default).unwrap_or(i64::MAX))?;
        u64::try_from(value).map_err(|_| {
            self.param_err(
                name,
                format!(
                    "{value} is negative; allowed is an integer from 0 to {}",
                    i64::MAX
                ),
            )
        })
    }

    /// An integer parameter, or `default` when absent.
    pub fn param_i64(&self, name: &str, default: i64) -> Result<i64, TaskBuildError> {
        match self.params.get(name) {
            None => Ok(default),
            Some(ParamValue::Int(i)) => Ok(*i),
            Some(other) => {
                Err(self.param_err(name, format!("expected an integer, found {other:?}")))
            }
        }
    }

    /// A boolean parameter, or `default` when absent.
    pub fn param_bool(&self, name: &str, default: bool) -> Result<bool, TaskBuildError> {
        match self.params.get(name) {
            None => Ok(default),
            Some(ParamValue::Bool(b)) => Ok(*b),
            Some(other) => Err(self.param_err(
                name,
                format!("expected a boolean, found a {}", other.kind_name()),
            )),
        }
    }

    /// A string parameter, or `default` when absent.
    pub fn param_str(&self, name: &str, default: &str) -> Result<String, TaskBuildError> {
        match self.params.get(name) {
            None => Ok(default.to_string()),
            Some(ParamValue::Str(s)) => Ok(s.clone()),
            Some(other) => Err(self.param_err(
                name,
                format!("expected a string, found a {}", other.kind_name()),
            )),
        }
    }

    /// An array of numbers (integers are accepted), or `default` when absent.
    pub fn param_f64s(&self, name: &str, default: &[f64]) -> Result<Vec<f64>, TaskBuildError> {
        match self.params.get(name) {
            None => Ok(default.to_vec()),
            Some(ParamValue::Array(items)) => items
                .iter()
                .map(|v| match v {
                    ParamValue::Int(i) => Ok(*i as f64),
                    ParamValue::Float(f) => f
                        .parse()
                        .map_err(|_| self.param_err(name, format!("`{f}` is not a number"))),
                    other => Err(self.param_err(
                        name,
                        format!(
                            "expected an array of numbers, found a {}",
                            other.kind_name()
                        ),
                    )),
                })
                .collect(),
            Some(other) => Err(self.param_err(
                name,
                format!(
                    "expected an array of numbers, found a {}",
                    other.kind_name()
                ),
            )),
        }
    }

    /// Reads the parameter `param` declares, with the declaration's default and range (the
    /// same checks and messages as the `param_*` getters, so a value `takt check` did not
    /// see is refused here too). The same declaration goes into the catalog through
    /// [`Ports::declare`], so name, default and range are written once.
    pub fn get<P: Declared>(&self, param: &P) -> Result<P::Value, TaskBuildError> {
        param.read(self)
    }

    /// A constructor-side failure with a reason.
    pub fn fail(&self, reason: impl Into<String>) -> TaskBuildError {
        TaskBuildError::Other {
            task: self.task.to_string(),
            reason: reason.into(),
        }
    }
}

/// Builds one task instance: the plain `fn` form.
pub type TaskConstructor = fn(&TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError>;

/// Builds one task instance, as the registry keeps it: a `fn` or a closure that captures
/// state (a calibration table, a shared configuration, a builder's settings). It is called
/// once per task instance, on the dispatcher thread that will run the task, so it must be
/// `Send + Sync`; what it captures is shared by every instance it builds.
pub type SharedConstructor =
    std::sync::Arc<dyn Fn(&TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> + Send + Sync>;

/// Maps task implementation names to constructors, and knows the message types apps use.
#[derive(Default, Clone)]
pub struct Registry {
    catalog: Catalog,
    /// The structural layout of every message type the registry's tasks use.
    layouts: BTreeMap<&'static str, TypeLayout>,
    constructors: BTreeMap<String, SharedConstructor>,
}

/// Declares a task's port signature at registration: `Ports::new().reads::<A>("a")`.
#[derive(Default, Clone, Debug)]
pub struct Ports {
    sig: TaskSignature,
    types: Vec<(Fingerprint, TypeLayout)>,
}

impl Ports {
    pub fn new() -> Self {
        Ports::default()
    }
    pub fn reads<T: Message>(mut self, topic: &str) -> Self {
        self.sig.reads.push((topic.to_string(), T::TYPE_NAME));
        self.types.push((T::fingerprint(), T::layout()));
        self
    }
    pub fn writes<T: Message>(mut self, topic: &str) -> Self {
        self.sig.writes.push((topic.to_string(), T::TYPE_NAME));
        self.types.push((T::fingerprint(), T::layout()));
        self
    }
    /// Declares a parameter: its type, default and range become part of the app's catalog,
    /// and `takt check` refuses a manifest value that does not fit. A task that declares
    /// any parameter has every `[task.params]` key checked against its declarations.
    pub fn param(mut self, name: &str, param: Param) -> Self {
        self.sig.params.push(ParamDecl {
            name: name.to_string(),
            kind: param.kind,
            default: param.default,
            min: param.min,
            max: param.max,
        });
        self
    }
    /// Declares a parameter written once as a [`Declare`] `const`; the constructor reads the
    /// same const with [`TaskBuilder::get`].
    pub fn declare(self, param: &dyn Declare) -> Self {
        self.param(param.name(), param.param())
    }
    /// [`declare`](Self::declare) for every parameter of a task module's list.
    pub fn declare_all(self, params: &[&dyn Declare]) -> Self {
        params.iter().fold(self, |ports, p| ports.declare(*p))
    }
}

/// A parameter written once, as a `const` next to the task's parameter struct: the catalog
/// declares it ([`Ports::declare`]) and the constructor reads it ([`TaskBuilder::get`]), so
/// its name, default and range cannot drift apart. Object-safe, so a task module can list
/// all of its parameters in one `&[&dyn Declare]`.
pub trait Declare {
    /// The parameter's name under `[task.params]`.
    fn name(&self) -> &'static str;
    /// What the catalog declares: type, default, range.
    fn param(&self) -> Param;
}

/// A [`Declare`] with its typed read.
pub trait Declared: Declare {
    type Value;
    /// The manifest's value (or the default), checked against type and range.
    fn read(&self, b: &TaskBuilder<'_>) -> Result<Self::Value, TaskBuildError>;
}

/// A float parameter (an integer is accepted too) in `min..=max`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FloatParam {
    pub name: &'static str,
    pub default: f64,
    pub min: f64,
    pub max: f64,
}

impl FloatParam {
    pub const fn new(name: &'static str, default: f64, min: f64, max: f64) -> Self {
        FloatParam {
            name,
            default,
            min,
            max,
        }
    }
}

impl Declare for FloatParam {
    fn name(&self) -> &'static str {
        self.name
    }
    fn param(&self) -> Param {
        Param::float(self.default).range(self.min, self.max)
    }
}

impl Declared for FloatParam {
    type Value = f64;
    fn read(&self, b: &TaskBuilder<'_>) -> Result<f64, TaskBuildError> {
        b.param_f64_in(self.name, self.default, self.min, self.max)
    }
}

/// A duration given in milliseconds (float or integer) in `min_ms..=max_ms`, declared as a
/// float in milliseconds and read in nanoseconds (rounded to the nearest).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MsParam {
    pub name: &'static str,
    pub default_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

impl MsParam {
    pub const fn new(name: &'static str, default_ms: f64, min_ms: f64, max_ms: f64) -> Self {
        MsParam {
            name,
            default_ms,
            min_ms,
            max_ms,
        }
    }
    /// The default in nanoseconds, rounded as [`TaskBuilder::param_ms_in_ns`] rounds.
    pub const fn default_ns(&self) -> u64 {
        (self.default_ms * 1e6 + 0.5) as u64
    }
}

impl Declare for MsParam {
    fn name(&self) -> &'static str {
        self.name
    }
    fn param(&self) -> Param {
        Param::float(self.default_ms).range(self.min_ms, self.max_ms)
    }
}

impl Declared for MsParam {
    type Value = u64;
    fn read(&self, b: &TaskBuilder<'_>) -> Result<u64, TaskBuildError> {
        b.param_ms_in_ns(self.name, self.default_ms, self.min_ms, self.max_ms)
    }
}

/// A seed: an integer from 0 to `i64::MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedParam {
    pub name: &'static str,
    pub default: u64,
}

impl SeedParam {
    pub const fn new(name: &'static str, default: u64) -> Self {
        SeedParam { name, default }
    }
}

impl Declare for SeedParam {
    fn name(&self) -> &'static str {
        self.name
    }
    fn param(&self) -> Param {
        let default = i64::try_from(self.default).unwrap_or(i64::MAX);
        Param::int(default).range(0.0, i64::MAX as f64)
    }
}

impl Declared for SeedParam {
    type Value = u64;
    fn read(&self, b: &TaskBuilder<'_>) -> Result<u64, TaskBuildError> {
        b.param_seed(self.name, self.default)
    }
}

/// A boolean parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoolParam {
    pub name: &'static str,
    pub default: bool,
}

impl BoolParam {
    pub const fn new(name: &'static str, default: bool) -> Self {
        BoolParam { name, default }
    }
}

impl Declare for BoolParam {
    fn name(&self) -> &'static str {
        self.name
    }
    fn param(&self) -> Param {
        Param::bool(self.default)
    }
}

impl Declared for BoolParam {
    type Value = bool;
    fn read(&self, b: &TaskBuilder<'_>) -> Result<bool, TaskBuildError> {
        b.param_bool(self.name, self.default)
    }
}

/// A string parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StrParam {
    pub name: &'static str,
    pub default: &'static str,
}

impl StrParam {
    pub const fn new(name: &'static str, default: &'static str) -> Self {
        StrParam { name, default }
    }
}

impl Declare for StrParam {
    fn name(&self) -> &'static str {
        self.name
    }
    fn param(&self) -> Param {
        Param::string(self.default)
    }
}

impl Declared for StrParam {
    type Value = String;
    fn read(&self, b: &TaskBuilder<'_>) -> Result<String, TaskBuildError> {
        b.param_str(self.name, self.default)
    }
}

/// A parameter declaration: `Param::float(1.0).range(0.0, 10.0)`, `Param::int(3)`,
/// `Param::bool(false)`, `Param::string("left")`, `Param::floats()` (an array, required),
/// `Param::required(ParamKind::Float)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    kind: ParamKind,
    default: Option<ParamValue>,
    min: Option<f64>,
    max: Option<f64>,
}

impl Param {
    fn of(kind: ParamKind, default: Option<ParamValue>) -> Param {
        Param {
            kind,
            default,
            min: None,
            max: None,
        }
    }
    pub fn float(default: f64) -> Param {
        Param::of(
            ParamKind::Float,
            Some(ParamValue::Float(format!("{default:?}"))),
        )
    }
    pub fn int(default: i64) -> Param {
        Param::of(ParamKind::Int, Some(ParamValue::Int(default)))
    }
    pub fn bool(default: bool) -> Param {
        Param::of(ParamKind::Bool, Some(ParamValue::Bool(default)))
    }
    pub fn string(default: &str) -> Param {
        Param::of(ParamKind::Str, Some(ParamValue::Str(default.to_string())))
    }
    /// An array of floats the manifest must give.
    pub fn floats() -> Param {
        Param::of(ParamKind::Array(ScalarKind::Float), None)
    }
    /// A parameter of `kind` without a default: the manifest must give it.
    pub fn required(kind: ParamKind) -> Param {
        Param::of(kind, None)
    }
    /// Inclusive bounds for a number (every element of a numeric array).
    pub fn range(mut self, min: f64, max: f64) -> Param {
        self.min = Some(min);
        self.max = Some(max);
        self
    }
}

impl Registry {
    pub fn new() -> Self {
        Registry::default()
    }

    /// Makes a message type known by name, so manifests can refer to it.
    pub fn message<T: Message>(&mut self) -> &mut Self {
        self.catalog.types.insert(T::TYPE_NAME, T::fingerprint());
        self.layouts.insert(T::TYPE_NAME, T::layout());
        self
    }

    /// Registers the task implementation `name`: a constructor `fn` or a closure (see
    /// [`SharedConstructor`]). A manifest `[[task]]` runs it when it is named `name` or says
    /// `impl = "name"`; the constructor is called once per such instance, and the ports it
    /// opens by the topics declared here are moved to the instance's `[task.topics]`.
    pub fn task<F>(&mut self, name: &str, ports: Ports, ctor: F) -> &mut Self
    where
        F: Fn(&TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> + Send + Sync + 'static,
    {
        self.task_shared(name, ports, std::sync::Arc::new(ctor))
    }

    /// [`task`](Self::task) with a constructor already shared (several implementations built
    /// by one closure, or one constructor chosen at run time).
    pub fn task_shared(&mut self, name: &str, ports: Ports, ctor: SharedConstructor) -> &mut Self {
        for (fp, layout) in &ports.types {
            self.catalog.types.insert(fp.name, *fp);
            self.layouts.insert(fp.name, layout.clone());
        }
        self.catalog.tasks.insert(name.to_string(), ports.sig);
        self.constructors.insert(name.to_string(), ctor);
        self
    }

    /// What validation checks manifests against.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The structural layout of message type `name`, if a registered task uses it.
    pub fn layout(&self, name: &str) -> Option<&TypeLayout> {
        self.layouts.get(name)
    }

    pub fn constructor(&self, name: &str) -> Result<SharedConstructor, TaskBuildError> {
        self.constructors
            .get(name)
            .cloned()
            .ok_or_else(|| TaskBuildError::UnknownTask {
                task: name.to_string(),
                known: self.constructors.keys().cloned().collect(),
            })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn ctx() -> StepContext {
        StepContext::new(JobTime {
            release_ns: 10,
            deadline_ns: 20,
            index: 1,
        })
    }

    #[test]
    fn a_job_without_reports_has_no_fault() {
        let c = ctx();
        assert_eq!((c.faults_reported(), c.first_fault()), (0, None));
    }

    #[test]
    fn several_reports_in_one_job_are_counted_and_keep_the_first_code() {
        let c = ctx();
        c.fault(0);
        c.fault(7);
        c.fault(9);
        assert_eq!((c.faults_reported(), c.first_fault()), (3, Some(0)));
        // A fresh context per job: nothing carries over.
        assert_eq!(ctx().first_fault(), None);
    }

    #[test]
    fn the_report_count_saturates_instead_of_wrapping() {
        let c = ctx();
        c.fault(5);
        c.fault_reports.set(u32::MAX - 1);
        c.fault(6);
        c.fault(6);
        assert_eq!((c.faults_reported(), c.first_fault()), (u32::MAX, Some(5)));
    }
}

#[cfg(test)]
mod param_tests {
    use super::*;

    fn with_params<R>(params: &[(&str, ParamValue)], f: impl FnOnce(&TaskBuilder<'_>) -> R) -> R {
        let node = PortNode::new(&format!("task-params-{}", std::process::id())).expect("node");
        let params: BTreeMap<String, ParamValue> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let timing = TaskTiming {
            period_ns: 10_000_000,
            offset_ns: 0,
            budget_ns: 1_000_000,
            let_ns: 5_000_000,
        };
        let b = TaskBuilder::new("radar", &node, &[], &params, timing);
        f(&b)
    }

    fn reason(e: TaskBuildError) -> String {
        match e {
            TaskBuildError::Param { task, name, reason } => {
                assert_eq!((task.as_str(), name.as_str()), ("radar", "gain"));
                reason
            }
            other => panic!("not a parameter error: {other}"),
        }
    }

    #[test]
    fn a_ranged_float_is_read_defaulted_and_refused_outside_its_range_or_as_nan() {
        let float = |s: &str| ParamValue::Float(s.to_string());
        with_params(&[("gain", float("2.5"))], |b| {
            assert_eq!(b.param_f64_in("gain", 1.0, 0.0, 10.0).unwrap(), 2.5);
            assert_eq!(b.param_f64_in("absent", 1.0, 0.0, 10.0).unwrap(), 1.0);
            let why = reason(b.param_f64_in("gain", 1.0, 0.0, 2.0).unwrap_err());
            assert_eq!(why, "2.5 is out of range; allowed is 0 to 2");
        });
        with_params(&[("gain", float("NaN"))], |b| {
            assert!(b.param_f64_in("gain", 1.0, 0.0, 10.0).is_err());
        });
        with_params(&[("gain", ParamValue::Int(3))], |b| {
            assert_eq!(b.param_ms_in_ns("gain", 1.0, 0.0, 10.0).unwrap(), 3_000_000);
            let why = reason(b.param_ms_in_ns("gain", 1.0, 0.0, 2.0).unwrap_err());
            assert!(why.contains("out of range"), "{why}");
        });
    }

    #[test]
    fn a_seed_is_a_non_negative_integer() {
        with_params(&[("gain", ParamValue::Int(-1))], |b| {
            assert_eq!(b.param_seed("absent", 7).unwrap(), 7);
            let why = reason(b.param_seed("gain", 7).unwrap_err());
            assert!(why.starts_with("-1 is negative"), "{why}");
        });
        with_params(&[("gain", ParamValue::Int(42))], |b| {
            assert_eq!(b.param_seed("gain", 7).unwrap(), 42);
        });
    }

    const GAIN: FloatParam = FloatParam::new("gain", 1.0, 0.0, 2.0);
    const WINDOW: MsParam = MsParam::new("gain", 2.5, 1.0, 10.0);
    const SEED: SeedParam = SeedParam::new("gain", 7);
    const ALL: &[&dyn Declare] = &[
        &GAIN,
        &BoolParam::new("on", true),
        &StrParam::new("side", "left"),
    ];

    #[test]
    fn a_declaration_is_what_the_catalog_declares_and_what_the_constructor_reads() {
        let sig = Ports::new().declare_all(ALL).declare(&SEED).sig;
        let names: Vec<&str> = sig.params.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["gain", "on", "side", "gain"]);
        let gain = &sig.params[0];
        assert_eq!(gain.kind, ParamKind::Float);
        assert_eq!(gain.default, Some(ParamValue::Float("1.0".into())));
        assert_eq!((gain.min, gain.max), (Some(0.0), Some(2.0)));
        let seed = &sig.params[3];
        assert_eq!(
            (seed.kind, seed.default.clone()),
            (ParamKind::Int, Some(ParamValue::Int(7)))
        );
        assert_eq!(seed.min, Some(0.0));
        assert_eq!(WINDOW.param(), Param::float(2.5).range(1.0, 10.0));

        with_params(&[], |b| {
            assert_eq!(b.get(&GAIN).unwrap(), 1.0);
            assert_eq!(b.get(&WINDOW).unwrap(), WINDOW.default_ns());
            assert_eq!(WINDOW.default_ns(), 2_500_000);
            assert_eq!(b.get(&SEED).unwrap(), 7);
            assert!(b.get(&BoolParam::new("on", true)).unwrap());
            assert_eq!(b.get(&StrParam::new("side", "left")).unwrap(), "left");
        });
    }

    #[test]
    fn a_declared_read_keeps_checking_type_and_range_with_the_getters_messages() {
        with_params(&[("gain", ParamValue::Float("2.5".into()))], |b| {
            let why = reason(b.get(&GAIN).unwrap_err());
            assert_eq!(why, "2.5 is out of range; allowed is 0 to 2");
            assert_eq!(b.get(&WINDOW).unwrap(), 2_500_000);
            // A range narrowed by another parameter, read through the same declaration.
            let narrowed = FloatParam { max: 3.0, ..GAIN };
            assert_eq!(b.get(&narrowed).unwrap(), 2.5);
        });
        with_params(&[("gain", ParamValue::Str("high".into()))], |b| {
            assert!(reason(b.get(&GAIN).unwrap_err()).contains("expected a number"));
            assert!(reason(b.get(&SEED).unwrap_err()).contains("expected an integer"));
        });
        with_params(&[("gain", ParamValue::Int(-1))], |b| {
            assert!(reason(b.get(&SEED).unwrap_err()).starts_with("-1 is negative"));
        });
    }
}

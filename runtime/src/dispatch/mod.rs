//! The dispatcher: runs a verified plan, one pinned SCHED_FIFO thread per core.
//!
//! Owns: turning a [`Plan`] into executing jobs. For each core the plan uses, one thread
//! named `takt-core<N>` is pinned to that core (core_affinity), put under SCHED_FIFO at the
//! deployment's priority (thread-priority), and walks the core's table of the current mode:
//! it sleeps until each window's absolute start (`clock_nanosleep(TIMER_ABSTIME)` against
//! the shared epoch), runs the job's `step`, measures release lateness and execution time,
//! and applies the task's overrun policy; when the job reported a fault
//! (`StepContext::fault`) it counts and traces it and applies the task's `on_fault` policy
//! (an escalation is the same boundary mode request an overrun escalation makes). Memory
//! is locked with `mlockall` for the run.
//! It never parses TOML, never plans, and never decides data visibility: LET is enforced by
//! the ports from the logical times the dispatcher hands each job.
//!
//! # Hot path
//!
//! The walk is `walk.rs`, alone: between the epoch and the end of the run a dispatcher
//! allocates nothing, takes no lock and makes no syscall but the absolute sleep, the
//! `CLOCK_MONOTONIC` reads (vDSO, no syscall) and two reads of the thread's CPU time per job
//! (plus whatever the port operations inside `step` do): tasks, ports, tables and
//! histograms are all built before the epoch (`build.rs`), mode decisions are one
//! compare-and-swap ([`RunControl`]). `run.rs` starts the dispatchers and ends them.
//!
//! # Attribution
//!
//! Every overrun, skip and deadline miss is charged to the platform or to takt/task by
//! [`attribution`]: the dispatcher reads `CLOCK_THREAD_CPUTIME_ID` at each job's start and
//! end, so wall time minus CPU time is what the host took from the job. That read is a real
//! syscall (about 470 ns on the development VM, so about 1 us per job), the price of
//! telling a host stall from a task that burns its budget. The overrun policy still acts on
//! every overrun, whoever caused it: the window was exceeded either way.
//!
//! # Simulated time
//!
//! With [`ClockKind::Sim`] the same tables run on one thread against a [`SimClock`]: the
//! windows of all cores are merged in order of start time, and every sleep jumps virtual
//! time forward. Because a job's inputs are fixed by LET (the newest sample whose writer's
//! deadline is at or before the job's release), and every such writer window ends before
//! that deadline, the merged order feeds every job exactly the data it gets in real time.
//! Simulated execution time is the injected jitter only, so overrun policies act the same
//! way in every simulated run; the physical duration of `step` is still measured and
//! reported as execution time.

pub mod attribution;
mod build;
mod control;
pub mod lockstep;
mod rt;
mod run;
mod stats;
mod tracing;
mod walk;

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use attribution::Attribution;
pub use build::HostBuildError;
pub use control::{
    cpu_bucket, cpu_quantile_bucket, CACHE_LINE, CPU_BUCKETS, CPU_BUCKETS_PER_BUDGET,
};
pub use control::{
    AppHealth, CycleDecision, Handover, HandoverError, OwnOverrun, RunControl, MAX_MODES, STOP,
};
pub use rt::{
    pin_current, probe_realtime, set_fifo_current, thread_cpu_ns, FifoError, LockMemoryError,
    PinError,
};
use run::{run_real, run_sim};
use stats::TaskRecorder;
pub use stats::{FaultCounts, PlatformShare, Quantiles, TaskStats};
use tracing::Emitter;
pub use tracing::{RunTraceError, TraceOptions, TraceSummary};

use crate::manifest::{Deployment, FaultPolicy, OverrunPolicy, TaskId};
use crate::plan::{Plan, Window};
use crate::port::ActivityCell;
use crate::port::{PortNode, Sizing};
use crate::task::{PortBinding, Registry, StepContext, Task, TaskBuilder, TaskReport, TaskTiming};
pub use crate::time::ClockKind;
use crate::time::{monotonic_now_ns, JobTime, MonoNs, MonotonicClock, SimClock};
use crate::trace::{RingProducer, TraceRecord};

/// Injected execution-time jitter: before each job, the dispatcher spends a pseudo-random
/// time in `[0, max_fraction_of_budget * budget]` (a busy wait in real time, a clock advance
/// in simulated time), drawn from a per-task generator seeded with `seed`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Jitter {
    pub seed: u64,
    pub max_fraction_of_budget: f64,
}

/// Injected platform stalls: after a job's `step`, with probability `1 / every_jobs` per
/// job (a per-task generator seeded with `seed`), its thread is taken off the CPU for
/// `stall_ns`: the simulated clock jumps without the job using CPU time, and in real time
/// the thread sleeps inside its window. This is what a host stall does to a job, so it is
/// what attribution must charge to the platform. Off by default; with it off, nothing of
/// a run changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlatformStall {
    pub seed: u64,
    pub every_jobs: u64,
    pub stall_ns: u64,
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub clock: ClockKind,
    /// Run length, rounded up to whole hyperperiods.
    pub duration_ns: u64,
    /// Without SCHED_FIFO permission, run at normal priority instead of refusing.
    pub allow_non_rt: bool,
    pub jitter: Option<Jitter>,
    /// Injected off-CPU time (a simulated host stall), see [`PlatformStall`].
    pub platform_stall: Option<PlatformStall>,
    /// Shared-memory namespace of the run's topics (default: the deployment name).
    pub namespace: Option<String>,
    /// SCHED_FIFO priority (default: the manifest's).
    pub priority: Option<u8>,
    /// How long every core may take to build its tasks and report ready.
    pub startup_timeout_ns: u64,
    /// Time between the last core becoming ready and the epoch (first release).
    pub epoch_margin_ns: u64,
    /// Record a trace file of every job (release, start, reads, publishes, end, overruns,
    /// skips, mode switches).
    pub trace: Option<TraceOptions>,
    // --- lifecycle hooks (multi-process) ---
    /// Host only these tasks (one app's tasks in multi-process mode): every other task's
    /// windows are left out of the tables, and a core none of them uses gets no dispatcher.
    /// `None` hosts every task.
    pub tasks: Option<Vec<TaskId>>,
    /// The first hyperperiod cycle to walk: a restarted app process rejoins a running
    /// schedule at a later boundary, against the same epoch. A [`JoinHook`] may move it later.
    pub start_cycle: u64,
    // --- end lifecycle hooks ---
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            clock: ClockKind::Real,
            duration_ns: 10_000_000_000,
            allow_non_rt: false,
            jitter: None,
            platform_stall: None,
            namespace: None,
            priority: None,
            startup_timeout_ns: 10_000_000_000,
            epoch_margin_ns: 50_000_000,
            trace: None,
            tasks: None,
            start_cycle: 0,
        }
    }
}

// --- lifecycle hooks (multi-process) ---
/// Where a process joins the schedule: the shared epoch and the first cycle it walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinAt {
    /// `CLOCK_MONOTONIC` time of cycle 0's start, the same in every process of the run.
    pub epoch: MonoNs,
    /// The first cycle this process walks (0 at the start of the run).
    pub start_cycle: u64,
}

/// Called once every core of this process has built its tasks: reports the process ready
/// and waits, at most the given time, for where to join. An `Err` aborts the run before any
/// job and names why.
pub type JoinHook<'a> = &'a (dyn Fn(Duration) -> Result<JoinAt, String> + Sync);

/// The end-of-run rendezvous: the counter every dispatcher bumps after its last window and
/// how many dispatchers there are in total (across processes when the counter is shared).
#[derive(Clone, Copy)]
pub struct WalkBarrier<'a> {
    pub walked: &'a crate::sync::AtomicU64,
    pub dispatchers: usize,
}

/// What a supervised process adds to a real-time run: where the epoch comes from, where
/// its health counters live, and the end-of-run rendezvous with other processes.
#[derive(Clone, Copy, Default)]
pub struct Hooks<'a> {
    /// Replaces "epoch = now + margin once all cores are ready" (real time only).
    pub join: Option<JoinHook<'a>>,
    /// Heartbeat, overrun and missed-release counters the supervisor reads.
    pub health: Option<&'a AppHealth>,
    /// Replaces the process-local rendezvous of this run's own dispatchers.
    pub barrier: Option<WalkBarrier<'a>>,
    /// Which app and incarnation this process is, for handovers between versions of an
    /// app (OTA hot swap): `None` runs every hosted window, whatever handovers say.
    pub role: Option<AppRole>,
    /// Simulated time shared with other processes (a supervised `--clock sim` run).
    pub lockstep: Option<lockstep::Lockstep<'a>>,
}

/// One process of one app, as handovers name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppRole {
    /// The app's index in the deployment.
    pub app: usize,
    pub incarnation: u32,
    /// Start standing by: follow the schedule without running a window until a handover
    /// names this incarnation.
    pub standby: bool,
}

impl fmt::Debug for Hooks<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("join", &self.join.is_some())
            .field("health", &self.health.is_some())
            .field("barrier", &self.barrier.map(|b| b.dispatchers))
            .field("role", &self.role)
            .finish()
    }
}

/// The run's `digest:`: SHA-256 over every task digest, in task-name order (each as the
/// name, a zero byte, the 32 digest bytes). Processes that each ran some tasks combine to
/// the same digest as one process that ran them all.
pub fn combine_digests(reports: &[(String, TaskReport)]) -> [u8; 32] {
    let mut sorted: Vec<&(String, TaskReport)> = reports.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut hasher = Sha256::new();
    for (name, r) in sorted {
        if let Some(digest) = &r.digest {
            hasher.update(name.as_bytes());
            hasher.update([0u8]);
            hasher.update(digest);
        }
    }
    hasher.finalize().into()
}

/// The cores on which the hosted tasks (all when `tasks` is `None`) have a window in some
/// mode, ascending.
pub fn hosted_cores(plan: &Plan, tasks: Option<&[TaskId]>) -> Vec<usize> {
    let mut cores: Vec<usize> = plan
        .modes
        .iter()
        .flat_map(|m| {
            m.cores
                .iter()
                .filter(|t| t.windows.iter().any(|w| hosts(tasks, w.task)))
                .map(|t| t.core)
        })
        .collect();
    cores.sort_unstable();
    cores.dedup();
    cores
}

fn hosts(tasks: Option<&[TaskId]>, task: TaskId) -> bool {
    tasks.is_none_or(|t| t.contains(&task))
}
// --- end lifecycle hooks ---

/// Why a run could not start or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// The plan does not belong to this deployment (wrong number of modes or channels).
    PlanMismatch(String),
    /// SCHED_FIFO is not permitted and `allow_non_rt` was not given.
    NotRealtime { priority: u8, reason: String },
    /// A core's dispatcher could not be set up (pinning, shared memory).
    Core { core: usize, reason: String },
    /// A task's constructor failed.
    TaskBuild { core: usize, reason: String },
    /// A core did not report ready in time.
    StartupTimeout { cores: Vec<usize>, timeout_ns: u64 },
    /// A dispatcher thread panicked (a task's `step` or `finish` panicked).
    Panicked { core: usize, what: String },
    /// The [`JoinHook`] refused (the supervisor never published the epoch, or went away).
    Join(String),
    /// The trace file could not be created or finished.
    Trace(String),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::PlanMismatch(why) => write!(f, "the plan does not fit the deployment: {why}"),
            RunError::NotRealtime { priority, reason } => write!(
                f,
                "real-time scheduling is not available: {reason}. Run as root (or with CAP_SYS_NICE), or pass --allow-non-rt to run at normal priority without timing guarantees (SCHED_FIFO priority {priority} was requested)"
            ),
            RunError::Core { core, reason } => write!(f, "core {core}: {reason}"),
            RunError::TaskBuild { core, reason } => {
                write!(f, "core {core}: cannot build a task: {reason}")
            }
            RunError::StartupTimeout { cores, timeout_ns } => write!(
                f,
                "the dispatchers of cores {cores:?} did not become ready within {}",
                crate::time::format_ns(*timeout_ns)
            ),
            RunError::Panicked { core, what } => {
                write!(f, "the dispatcher of core {core} panicked: {what}")
            }
            RunError::Trace(why) => write!(f, "trace: {why}"),
            RunError::Join(why) => write!(f, "cannot join the schedule: {why}"),
        }
    }
}

impl std::error::Error for RunError {}

impl From<RunTraceError> for RunError {
    fn from(e: RunTraceError) -> Self {
        RunError::Trace(e.to_string())
    }
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub clock: ClockKind,
    /// Whether the dispatchers ran under SCHED_FIFO.
    pub realtime: bool,
    /// Hyperperiods executed.
    pub cycles: u64,
    pub hyperperiod_ns: u64,
    /// Physical time from the epoch to the last dispatcher's end.
    pub wall_ns: u64,
    /// Per task (manifest order), for every task that ran on some core.
    pub tasks: Vec<TaskStats>,
    /// `(cycle, mode name)`: the starting mode at cycle 0, then every switch.
    pub mode_history: Vec<(u64, String)>,
    /// Every task's own report, in task-name order.
    pub reports: Vec<(String, TaskReport)>,
    /// Problems that did not stop the run (e.g. memory could not be locked).
    pub warnings: Vec<String>,
    /// SHA-256 over the task digests, in task-name order.
    pub digest: [u8; 32],
    /// The trace file written, if the run was traced.
    pub trace: Option<TraceSummary>,
}

impl RunReport {
    /// The output digest as lowercase hex.
    pub fn digest_hex(&self) -> String {
        self.digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Runs a deployment's plan until `opts.duration_ns` (rounded up to whole hyperperiods) or
/// a stop request through `control`, and reports what happened.
pub fn run(
    d: &Deployment,
    plan: &Plan,
    registry: &Registry,
    opts: &RunOptions,
    control: &RunControl,
) -> Result<RunReport, RunError> {
    run_hosted(d, plan, registry, opts, control, Hooks::default())
}

/// [`run`] for a supervised process: the same, with the lifecycle manager's [`Hooks`].
pub fn run_hosted(
    d: &Deployment,
    plan: &Plan,
    registry: &Registry,
    opts: &RunOptions,
    control: &RunControl,
    hooks: Hooks<'_>,
) -> Result<RunReport, RunError> {
    if plan.modes.len() != d.modes.len() || plan.channels.len() != d.channels.len() {
        return Err(RunError::PlanMismatch(format!(
            "the plan has {} modes and {} channels, the deployment {} and {}",
            plan.modes.len(),
            plan.channels.len(),
            d.modes.len(),
            d.channels.len()
        )));
    }
    if plan.hyperperiod_ns == 0 {
        return Err(RunError::PlanMismatch("the hyperperiod is zero".into()));
    }
    let setup = Setup {
        d,
        plan,
        registry,
        namespace: opts.namespace.clone().unwrap_or_else(|| d.name.clone()),
        cycles: opts.duration_ns.div_ceil(plan.hyperperiod_ns).max(1),
        jitter: opts.jitter,
        platform_stall: opts.platform_stall,
        trace: opts.trace.clone(),
        tasks: opts.tasks.clone(),
        start_cycle: opts.start_cycle,
        health: hooks.health,
        joins_running: hooks.join.is_some(),
        role: hooks.role,
    };
    let outcome = match opts.clock {
        ClockKind::Sim => run_sim(&setup, opts, control, hooks)?,
        ClockKind::Real => run_real(&setup, opts, control, hooks)?,
    };
    Ok(report(&setup, opts.clock, outcome, control))
}

/// Everything a core needs to build its tasks, shared read-only by all dispatchers.
struct Setup<'a> {
    d: &'a Deployment,
    plan: &'a Plan,
    registry: &'a Registry,
    namespace: String,
    cycles: u64,
    jitter: Option<Jitter>,
    platform_stall: Option<PlatformStall>,
    trace: Option<TraceOptions>,
    /// Only these tasks are hosted (`None`: all).
    tasks: Option<Vec<TaskId>>,
    start_cycle: u64,
    health: Option<&'a AppHealth>,
    /// Supervised (a [`JoinHook`] is given): other processes may already be running.
    joins_running: bool,
    role: Option<AppRole>,
}

/// What one dispatcher hands back.
struct CoreOutcome {
    stats: Vec<(TaskId, TaskStats)>,
    reports: Vec<(String, TaskReport)>,
    end_ns: u64,
}

/// What all dispatchers together did.
struct Outcome {
    realtime: bool,
    start_ns: u64,
    cores: Vec<CoreOutcome>,
    warnings: Vec<String>,
    trace: Option<TraceSummary>,
}

/// A core number as trace records carry it. Validation bounds cores by
/// [`limits::MAX_CORE`](crate::manifest::limits::MAX_CORE), so the byte is exact.
fn core_byte(core: usize) -> u8 {
    debug_assert!(
        core <= crate::manifest::limits::MAX_CORE,
        "core {core} passed validation above the limit"
    );
    core as u8
}

/// The run's modes by name from cycle 0: the default mode, then every switch `control`
/// recorded, as `(cycle, mode name)`. What a run report shows, in one process or many.
pub fn mode_history(d: &Deployment, control: &RunControl) -> Vec<(u64, String)> {
    let mode_name = |m: usize| {
        d.modes
            .get(m)
            .map_or_else(|| format!("#{m}"), |m| m.name.clone())
    };
    let mut history = vec![(0, mode_name(d.default_mode))];
    history.extend(
        control
            .mode_switches()
            .into_iter()
            .map(|(c, m)| (c, mode_name(m))),
    );
    history
}

fn report(setup: &Setup<'_>, clock: ClockKind, o: Outcome, control: &RunControl) -> RunReport {
    let d = setup.d;
    let mut tasks: Vec<(TaskId, TaskStats)> = Vec::new();
    let mut reports: Vec<(String, TaskReport)> = Vec::new();
    let mut end_ns = o.start_ns;
    for c in o.cores {
        tasks.extend(c.stats);
        reports.extend(c.reports);
        end_ns = end_ns.max(c.end_ns);
    }
    tasks.sort_by_key(|(id, _)| *id);
    reports.sort_by(|a, b| a.0.cmp(&b.0));
    let digest = combine_digests(&reports);
    let mode_history = mode_history(d, control);
    RunReport {
        clock,
        realtime: o.realtime,
        cycles: (control.cycle() + 1).min(setup.cycles),
        hyperperiod_ns: setup.plan.hyperperiod_ns,
        wall_ns: end_ns.saturating_sub(o.start_ns),
        tasks: tasks.into_iter().map(|(_, s)| s).collect(),
        mode_history,
        reports,
        warnings: o.warnings,
        digest,
        trace: o.trace,
    }
}

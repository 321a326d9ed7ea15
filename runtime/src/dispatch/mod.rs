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
//! Between the epoch and the end of the run a dispatcher allocates nothing, takes no lock
//! and makes no syscall but the absolute sleep, the `CLOCK_MONOTONIC` reads (vDSO, no
//! syscall) and two reads of the thread's CPU time per job (plus whatever the port
//! operations inside `step` do): tasks, ports, tables and histograms are all built before
//! the epoch, mode decisions are one compare-and-swap ([`RunControl`]).
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
mod control;
pub mod lockstep;
mod rt;
mod stats;
mod tracing;

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use attribution::Attribution;
pub use control::{
    cpu_bucket, cpu_quantile_bucket, CACHE_LINE, CPU_BUCKETS, CPU_BUCKETS_PER_BUDGET,
};
pub use control::{
    AppHealth, CycleDecision, Handover, HandoverError, OwnOverrun, RunControl, MAX_MODES, STOP,
};
pub use rt::{probe_realtime, thread_cpu_ns};
use stats::TaskRecorder;
pub use stats::{FaultCounts, PlatformShare, Quantiles, TaskStats};
use tracing::Emitter;
pub use tracing::{TraceOptions, TraceSummary};

use crate::manifest::{Deployment, FaultPolicy, OverrunPolicy, TaskId};
use crate::plan::{Plan, Window};
use crate::port::ActivityCell;
use crate::port::{PortNode, Sizing};
use crate::task::{PortBinding, Registry, StepContext, Task, TaskBuilder, TaskReport, TaskTiming};
use crate::time::{monotonic_now_ns, Clock, JobTime, MonotonicClock, SimClock};
use crate::trace::{self, RingProducer, TraceRecord};

/// Which time base a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClockKind {
    /// `CLOCK_MONOTONIC`, pinned SCHED_FIFO threads.
    #[default]
    Real,
    /// Virtual time on one thread, as fast as the CPU allows.
    Sim,
}

impl fmt::Display for ClockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClockKind::Real => "real",
            ClockKind::Sim => "sim",
        })
    }
}

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
    pub epoch_ns: u64,
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
    let mode_name = |m: usize| {
        d.modes
            .get(m)
            .map_or_else(|| format!("#{m}"), |m| m.name.clone())
    };
    let mut mode_history = vec![(0, mode_name(d.default_mode))];
    mode_history.extend(
        control
            .mode_switches()
            .into_iter()
            .map(|(c, m)| (c, mode_name(m))),
    );
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

/// The cores the hosted tasks have windows on, in any mode, ascending.
fn planned_cores(setup: &Setup<'_>) -> Vec<usize> {
    hosted_cores(setup.plan, setup.tasks.as_deref())
}

/// The windows one dispatcher walks in each mode: one core's table, or (simulated time)
/// all cores' tables merged by start time, ties broken by core. Only hosted tasks' windows.
fn tables_for(setup: &Setup<'_>, cores: &[usize]) -> Vec<Vec<Window>> {
    let tasks = setup.tasks.as_deref();
    setup
        .plan
        .modes
        .iter()
        .map(|m| {
            let mut merged: Vec<(usize, Window)> = m
                .cores
                .iter()
                .filter(|t| cores.contains(&t.core))
                .flat_map(|t| {
                    t.windows
                        .iter()
                        .filter(|w| hosts(tasks, w.task))
                        .map(move |w| (t.core, w.clone()))
                })
                .collect();
            merged.sort_by_key(|(core, w)| (w.start_ns, *core));
            merged.into_iter().map(|(_, w)| w).collect()
        })
        .collect()
}

/// The ports of task `id`: one binding per channel it writes or reads, sized by the plan.
fn bindings(setup: &Setup<'_>, id: TaskId) -> Result<Vec<PortBinding>, String> {
    let d = setup.d;
    let mut out = Vec::new();
    for (i, ch) in d.channels.iter().enumerate() {
        let writes = ch.writer == id;
        let reads = ch.readers.contains(&id);
        if !writes && !reads {
            continue;
        }
        let fingerprint = *setup
            .registry
            .catalog()
            .types
            .get(ch.type_name.as_str())
            .ok_or_else(|| {
                format!(
                    "channel `{}` carries type `{}`, which no linked app registers",
                    ch.topic, ch.type_name
                )
            })?;
        let s = setup.plan.channels[i];
        let sizing = Sizing {
            buffer: s.buffer,
            history: s.history,
            max_borrowed: s.max_borrowed,
        };
        for is_writer in [true, false] {
            if (is_writer && writes) || (!is_writer && reads) {
                out.push(PortBinding {
                    topic: ch.topic.clone(),
                    fingerprint,
                    sizing,
                    is_writer,
                });
            }
        }
    }
    Ok(out)
}

/// One hosted task with its measurement state.
struct Hosted {
    id: TaskId,
    task: Box<dyn Task>,
    rec: TaskRecorder,
    skip_next: bool,
    /// Who the overrun that set `skip_next` is charged to.
    skip_attribution: Attribution,
    rng: u64,
    /// The generator of injected platform stalls (separate from `rng`, so injecting stalls
    /// leaves the execution-time jitter, and with it the outputs, unchanged).
    stall_rng: u64,
    probes: Vec<Probe>,
}

/// One port of a hosted task, watched for trace records after each job.
struct Probe {
    port: u16,
    is_writer: bool,
    activity: ActivityCell,
    /// The port's iceoryx2 end: [`Dispatcher::connect_ports`] connects it before the walk.
    connect: crate::port::Connector,
    /// The activity's `ops` when it was last traced.
    traced_ops: u64,
}

/// Builds, on the calling thread, every task that has a window in `tables`.
fn build_tasks(
    setup: &Setup<'_>,
    node: &PortNode,
    tables: &[Vec<Window>],
) -> Result<Vec<Hosted>, String> {
    let d = setup.d;
    let mut ids: Vec<TaskId> = tables.iter().flatten().map(|w| w.task).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut hosted = Vec::with_capacity(ids.len());
    for id in ids {
        let spec = d.tasks.get(id).ok_or_else(|| {
            format!("the plan names task #{id}, which the deployment does not have")
        })?;
        let ports = bindings(setup, id)?;
        let timing = TaskTiming {
            period_ns: spec.period_ns,
            offset_ns: spec.offset_ns,
            budget_ns: spec.budget_ns,
            let_ns: spec.let_ns,
        };
        // The constructor is the implementation's; the builder resolves its declared topics
        // through the instance's mapping, so the implementation's code is unchanged.
        let builder = TaskBuilder::new(&spec.name, node, &ports, &spec.params, timing)
            .instance_of(&spec.implementation, &spec.topics);
        let ctor = setup
            .registry
            .constructor(&spec.implementation)
            .map_err(|e| format!("task `{}`: {e}", spec.name))?;
        let task = ctor(&builder).map_err(|e| e.to_string())?;
        let probes = builder
            .take_probes()
            .into_iter()
            .map(|p| Probe {
                port: tracing::port_id(d, &p.topic).unwrap_or(u16::MAX),
                is_writer: p.is_writer,
                activity: p.activity,
                connect: p.connect,
                traced_ops: 0,
            })
            .collect();
        let seed = setup.jitter.map_or(0, |j| j.seed)
            ^ (id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let stall_seed = setup.platform_stall.map_or(0, |p| p.seed)
            ^ (id as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
        hosted.push(Hosted {
            id,
            task,
            rec: TaskRecorder::new(),
            skip_next: false,
            skip_attribution: Attribution::Takt,
            rng: seed,
            stall_rng: stall_seed,
            probes,
        });
    }
    Ok(hosted)
}

/// splitmix64: a tiny, well-distributed generator for reproducible jitter.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Simulated time shared with other processes, and whether a wait for them gave up.
struct SimStep<'a> {
    lockstep: lockstep::Lockstep<'a>,
    stalled: std::cell::Cell<bool>,
}

/// The time base of one dispatcher.
enum RunClock<'a> {
    Real(MonotonicClock),
    Sim(&'a SimClock, Option<&'a SimStep<'a>>),
}

impl RunClock<'_> {
    fn now_ns(&self) -> u64 {
        match self {
            RunClock::Real(c) => c.now_ns(),
            RunClock::Sim(c, _) => c.now_ns(),
        }
    }
    fn sleep_until_ns(&self, t: u64) {
        match self {
            RunClock::Real(c) => c.sleep_until_ns(t),
            RunClock::Sim(c, step) => {
                if let Some(s) = step {
                    if !s.lockstep.advance_to(t) {
                        s.stalled.set(true);
                    }
                }
                c.sleep_until_ns(t)
            }
        }
    }
    /// Waits for a window's start `t`: sleeps to it, or with a spin margin sleeps to
    /// `t - margin_ns` and spins on the clock to `t`. Returns the time spun (0 when the
    /// kernel woke the thread at or after `t`). Simulated time never spins.
    fn wake_at_ns(&self, t: u64, margin_ns: u64) -> u64 {
        match self {
            RunClock::Real(c) if margin_ns > 0 => {
                c.sleep_until_ns(t.saturating_sub(margin_ns));
                // The clock read is a vDSO call, not a system call.
                let from = c.now_ns();
                let mut now = from;
                while now < t {
                    std::hint::spin_loop();
                    now = c.now_ns();
                }
                now - from
            }
            _ => {
                self.sleep_until_ns(t);
                0
            }
        }
    }
    /// Spends `ns` of execution time: a busy wait on the real clock (the job keeps its
    /// core, as a slower `step` would), a jump of the simulated one.
    fn spend_ns(&self, ns: u64) {
        match self {
            RunClock::Real(c) => {
                let until = c.now_ns() + ns;
                while c.now_ns() < until {
                    std::hint::spin_loop();
                }
            }
            RunClock::Sim(c, _) => c.advance_ns(ns),
        }
    }
    /// Takes the thread off its CPU for `ns` (an injected platform stall): a sleep in real
    /// time, a jump of the simulated clock that uses no simulated CPU time.
    fn stall_ns(&self, ns: u64) {
        match self {
            RunClock::Real(_) => std::thread::sleep(Duration::from_nanos(ns)),
            RunClock::Sim(c, _) => c.advance_ns(ns),
        }
    }
}

/// How a dispatcher's walk ended.
#[derive(Clone, Copy, Debug)]
struct WalkEnd {
    /// It ran the app's windows at the end (not standing by for another version).
    owner: bool,
    /// The supervisor dismissed it while it stood by: the run goes on without it.
    dismissed: bool,
}

/// One dispatcher: a table per mode, the tasks it hosts, and where to find them.
struct Dispatcher<'a> {
    setup: &'a Setup<'a>,
    tables: Vec<Vec<Window>>,
    /// Task id → index into `hosted`.
    slot: Vec<Option<usize>>,
    hosted: Vec<Hosted>,
    clock: RunClock<'a>,
    epoch_ns: u64,
    control: &'a RunControl,
    emit: Emitter,
    /// When the previous job of this walk ended (0: none yet), on the run's clock.
    previous_end_ns: u64,
    /// The thread's CPU time at the previous job's end (real time only).
    previous_end_cpu_ns: u64,
    /// The platform's share of the previous job's delay, which a backlog passes on.
    carry_platform_ns: u64,
    /// How long before each window the dispatcher stops sleeping and spins (0: it
    /// sleeps to the start). The deployment's `wake` for this dispatcher's core.
    spin_margin_ns: u64,
}

impl<'a> Dispatcher<'a> {
    fn new(
        setup: &'a Setup<'a>,
        tables: Vec<Vec<Window>>,
        hosted: Vec<Hosted>,
        clock: RunClock<'a>,
        control: &'a RunControl,
        ring: Option<RingProducer>,
    ) -> Self {
        let mut slot = vec![None; setup.d.tasks.len()];
        for (i, h) in hosted.iter().enumerate() {
            slot[h.id] = Some(i);
        }
        Dispatcher {
            setup,
            tables,
            slot,
            hosted,
            clock,
            epoch_ns: 0,
            control,
            emit: Emitter::new(ring),
            previous_end_ns: 0,
            previous_end_cpu_ns: 0,
            carry_platform_ns: 0,
            spin_margin_ns: 0,
        }
    }

    /// Connects every port of the hosted tasks to the peers that exist now (opening and
    /// mapping their shared memory), off the hot path, before the walk. iceoryx2 would
    /// otherwise do it lazily in the first send or receive of each port, inside the first
    /// job (measured 15-200 us per port). A failure is left to that lazy path, which
    /// retries it and reports what still fails.
    fn connect_ports(&self) {
        for h in &self.hosted {
            for p in &h.probes {
                let _ = p.connect.update_connections();
            }
        }
    }

    /// Walks the tables from the epoch, starting at cycle `start_cycle`, until the run
    /// ends. The hot path: see the module docs.
    fn walk(&mut self, epoch_ns: u64, start_cycle: u64) -> WalkEnd {
        self.epoch_ns = epoch_ns;
        let h_ns = self.setup.plan.hyperperiod_ns;
        let mut previous_mode = usize::MAX;
        let role = self.setup.role;
        let mut owner = role.is_none_or(|r| !r.standby);
        // Handovers decided before this process started are history: they made it.
        let mut applied = self.control.handover_done().map_or(0, |(serial, _)| serial);
        for cycle in start_cycle..self.setup.cycles {
            let decision = self.control.decide(cycle);
            let mode = decision.mode;
            if mode == STOP {
                break;
            }
            if let Some(role) = role {
                let later = self
                    .control
                    .handover_done()
                    .is_some_and(|(serial, at)| serial > applied && at <= cycle);
                if decision.handover || later {
                    if let Some(h) = self.control.handover() {
                        if h.serial > applied {
                            applied = h.serial;
                            if h.app == role.app {
                                owner = h.owner == role.incarnation;
                            }
                        }
                    }
                }
                if !owner {
                    if self.control.is_dismissed(role.app, role.incarnation) {
                        return WalkEnd {
                            owner,
                            dismissed: true,
                        };
                    }
                    // Standing by: no window of this cycle is ours; look again at the
                    // next boundary.
                    self.clock
                        .sleep_until_ns(self.epoch_ns + (cycle + 1).saturating_mul(h_ns));
                    previous_mode = usize::MAX;
                    continue;
                }
            }
            self.control.note_cycle(cycle);
            if let Some(health) = self.setup.health {
                health.beat(cycle);
            }
            if mode != previous_mode && previous_mode != usize::MAX && self.emit.enabled() {
                let now_ns = self.clock.now_ns();
                let core = self.tables_core();
                self.emit.emit(TraceRecord::mode_switch(
                    core,
                    cycle,
                    cycle * h_ns,
                    now_ns,
                    previous_mode as u64,
                    mode as u64,
                ));
            }
            previous_mode = mode;
            let tables = std::mem::take(&mut self.tables);
            let table = tables.get(mode).map_or(&[][..], Vec::as_slice);
            if table.is_empty() {
                // Nothing of ours runs in this mode on this core. Without a window to sleep
                // to, the loop would decide every remaining cycle at once, ahead of wall
                // time: later mode and stop requests would find their boundaries already
                // decided, and the heartbeat would stop moving. So sleep to the boundary.
                self.clock
                    .sleep_until_ns(self.epoch_ns + (cycle + 1).saturating_mul(h_ns));
            }
            for w in table {
                self.job(w, cycle * h_ns);
            }
            self.tables = tables;
        }
        WalkEnd {
            owner,
            dismissed: false,
        }
    }

    /// The core this dispatcher's records name for deployment-wide events (its first
    /// task's core; simulated time runs all cores on one dispatcher).
    fn tables_core(&self) -> u8 {
        self.hosted.first().map_or(0, |h| {
            self.setup.d.tasks[h.id].core.min(u8::MAX as usize) as u8
        })
    }

    /// Runs one window's job in the cycle starting at logical `cycle_ns`.
    fn job(&mut self, w: &Window, cycle_ns: u64) {
        let planned_ns = self.epoch_ns + cycle_ns + w.start_ns;
        let spun_ns = self.clock.wake_at_ns(planned_ns, self.spin_margin_ns);
        let start_ns = self.clock.now_ns();
        let real = matches!(self.clock, RunClock::Real(_));
        // The thread's CPU time: see the module docs (Attribution) for its cost.
        let start_cpu_ns = if real { rt::thread_cpu_ns() } else { 0 };
        let Some(Some(i)) = self.slot.get(w.task).copied() else {
            return; // tables only hold hosted tasks (built from the same tables)
        };
        let spec = &self.setup.d.tasks[w.task];
        let h = &mut self.hosted[i];
        let core = spec.core.min(u8::MAX as usize) as u8;
        let task = w.task as u32;
        let release_ns = cycle_ns + w.release_ns;
        let index = release_ns.saturating_sub(spec.offset_ns) / spec.period_ns.max(1);
        let emit = &self.emit;
        emit.emit(TraceRecord::release(
            core,
            task,
            index,
            release_ns,
            start_ns,
            cycle_ns + w.start_ns,
            w.budget_ns,
        ));
        if h.skip_next {
            h.skip_next = false;
            let attribution = h.skip_attribution;
            h.rec.skipped += 1;
            if attribution == Attribution::Platform {
                h.rec.skipped_platform += 1;
            }
            if let Some(health) = self.setup.health {
                health.note_missed(attribution);
            }
            emit.emit(TraceRecord::skip(
                core,
                task,
                index,
                release_ns,
                start_ns,
                attribution.code(),
            ));
            return;
        }
        let ctx = StepContext::new(JobTime {
            release_ns,
            deadline_ns: cycle_ns + w.deadline_ns,
            index,
        });
        let jitter_ns = match self.setup.jitter {
            Some(j) if w.budget_ns > 0 => {
                let max = (w.budget_ns as f64 * j.max_fraction_of_budget.clamp(0.0, 1.0)) as u64;
                next_random(&mut h.rng) % (max + 1)
            }
            _ => 0,
        };
        let stall_ns = match self.setup.platform_stall {
            Some(p)
                if p.every_jobs > 0
                    && p.stall_ns > 0
                    && next_random(&mut h.stall_rng).is_multiple_of(p.every_jobs) =>
            {
                p.stall_ns
            }
            _ => 0,
        };
        // Only simulated time needs a second, physical clock reading (its clock does not
        // move during `step`); real time measures with the one clock it already reads.
        let physical_start_ns = if real { 0 } else { monotonic_now_ns() };
        emit.emit(TraceRecord::start(core, task, index, release_ns, start_ns));
        self.clock.spend_ns(jitter_ns);
        h.task.step(&ctx);
        if stall_ns > 0 {
            self.clock.stall_ns(stall_ns);
        }
        let end_ns = self.clock.now_ns();
        let end_cpu_ns = if real { rt::thread_cpu_ns() } else { 0 };
        // Simulated CPU time is the injected execution time; an injected stall is not.
        let cpu_ns = if real {
            end_cpu_ns.saturating_sub(start_cpu_ns)
        } else {
            (end_ns - start_ns).saturating_sub(stall_ns)
        };
        let figures = attribution::JobFigures {
            planned_ns,
            start_ns,
            end_ns,
            deadline_ns: self.epoch_ns + cycle_ns + w.deadline_ns,
            budget_ns: w.budget_ns,
            cpu_ns,
            previous_end_ns: self.previous_end_ns,
            // Spinning to the start is waiting, not takt's work that delays the job.
            between_cpu_ns: if real && self.previous_end_ns != 0 {
                start_cpu_ns
                    .saturating_sub(self.previous_end_cpu_ns)
                    .saturating_sub(spun_ns)
            } else {
                0
            },
            inherited_platform_ns: self.carry_platform_ns,
        };
        let verdict = attribution::classify(&figures);
        self.previous_end_ns = end_ns;
        self.previous_end_cpu_ns = end_cpu_ns;
        self.carry_platform_ns = verdict.platform_ns;
        if emit.enabled() {
            for p in &mut h.probes {
                let a = p.activity.get();
                if a.ops == p.traced_ops {
                    continue;
                }
                p.traced_ops = a.ops;
                emit.emit(if p.is_writer {
                    TraceRecord::publish(
                        core,
                        task,
                        index,
                        release_ns,
                        end_ns,
                        p.port,
                        a.seq,
                        a.visible_at_ns,
                    )
                } else {
                    TraceRecord::read(core, task, index, release_ns, end_ns, p.port, a.seq)
                });
            }
        }
        let (lateness_ns, execution_ns) = if real {
            (verdict.lateness_ns, end_ns - start_ns)
        } else {
            (0, monotonic_now_ns().saturating_sub(physical_start_ns))
        };
        h.rec
            .record(lateness_ns, execution_ns, cpu_ns, verdict.off_cpu_ns);
        if spun_ns > 0 {
            h.rec.spun_jobs += 1;
            h.rec.spin_ns += spun_ns;
        }
        if let Some(health) = self.setup.health {
            health.note_cpu(cpu_ns, w.budget_ns);
        }
        emit.emit(TraceRecord::end(
            core,
            task,
            index,
            release_ns,
            end_ns,
            execution_ns,
            verdict.off_cpu_ns,
        ));
        self.control.note_job();
        if let Some(code) = ctx.first_fault() {
            let reports = ctx.faults_reported();
            h.rec.faults.note(reports, code);
            if let Some(health) = self.setup.health {
                health.note_fault();
            }
            emit.emit(TraceRecord::fault(
                core,
                task,
                index,
                release_ns,
                end_ns,
                code,
                u64::from(reports),
            ));
            match spec.on_fault {
                FaultPolicy::Report => {}
                // The same boundary request an overrun escalation makes (`RunControl`):
                // every core switches at the next undecided hyperperiod boundary.
                FaultPolicy::Escalate(mode) => self.control.request_mode(mode),
            }
        }
        if let Some(attribution) = verdict.miss {
            h.rec.deadline_misses += 1;
            if attribution == Attribution::Platform {
                h.rec.deadline_misses_platform += 1;
            }
            if let Some(health) = self.setup.health {
                health.note_missed(attribution);
            }
            emit.emit(TraceRecord::miss(
                core,
                task,
                index,
                release_ns,
                end_ns,
                end_ns - figures.deadline_ns,
                verdict.platform_ns,
                attribution.code(),
            ));
        }
        if let Some(attribution) = verdict.overrun {
            h.rec.overruns += 1;
            if attribution == Attribution::Platform {
                h.rec.overruns_platform += 1;
            }
            emit.emit(TraceRecord::overrun(
                core,
                task,
                index,
                release_ns,
                end_ns,
                end_ns - start_ns,
                w.budget_ns,
                attribution.code(),
            ));
            self.control.note_overrun();
            if let Some(health) = self.setup.health {
                health.note_overrun(attribution, w.task, cpu_ns, w.budget_ns);
            }
            match spec.overrun {
                OverrunPolicy::Report => {}
                OverrunPolicy::SkipNext => {
                    h.skip_next = true;
                    h.skip_attribution = attribution;
                }
                OverrunPolicy::Escalate(mode) => self.control.request_mode(mode),
            }
        }
    }

    /// After the last job: lets every task report, off the real-time path.
    fn finish(mut self, core: usize) -> CoreOutcome {
        let end_ns = monotonic_now_ns();
        let d = self.setup.d;
        let mut stats = Vec::with_capacity(self.hosted.len());
        let mut reports = Vec::with_capacity(self.hosted.len());
        for h in &mut self.hosted {
            let spec = &d.tasks[h.id];
            let mut r = TaskReport::default();
            h.task.finish(&mut r);
            stats.push((
                h.id,
                h.rec.finish(
                    &spec.name,
                    if core == usize::MAX { spec.core } else { core },
                ),
            ));
            reports.push((spec.name.clone(), r));
        }
        CoreOutcome {
            stats,
            reports,
            end_ns,
        }
    }
}

fn run_sim(
    setup: &Setup<'_>,
    opts: &RunOptions,
    control: &RunControl,
    hooks: Hooks<'_>,
) -> Result<Outcome, RunError> {
    let cores = planned_cores(setup);
    let tables = tables_for(setup, &cores);
    let first_core = cores.first().copied().unwrap_or(0);
    let node = PortNode::new(&setup.namespace).map_err(|e| RunError::Core {
        core: first_core,
        reason: e.to_string(),
    })?;
    let hosted = build_tasks(setup, &node, &tables).map_err(|reason| RunError::TaskBuild {
        core: first_core,
        reason,
    })?;
    let (ring, drainer) = match &setup.trace {
        Some(t) => {
            let (mut producers, consumers) =
                tracing::rings(t, &[first_core]).map_err(RunError::Trace)?;
            let header = tracing::header(setup.d, setup.plan, t, trace::ClockKind::Sim, 0);
            let drainer = tracing::start_drainer(&header, t, consumers).map_err(RunError::Trace)?;
            (producers.pop(), Some(drainer))
        }
        None => (None, None),
    };
    let clock = SimClock::new(0);
    let step = hooks.lockstep.map(|lockstep| SimStep {
        lockstep,
        stalled: std::cell::Cell::new(false),
    });
    // A supervised process reports ready and learns its first cycle; simulated time
    // starts at logical 0 whatever the supervisor's epoch is.
    let start_cycle = match hooks.join {
        Some(join) => {
            let at = join(Duration::from_nanos(opts.startup_timeout_ns)).map_err(|reason| {
                RunError::Core {
                    core: first_core,
                    reason,
                }
            })?;
            at.start_cycle.max(setup.start_cycle)
        }
        None => setup.start_cycle,
    };
    let mut disp = Dispatcher::new(
        setup,
        tables,
        hosted,
        RunClock::Sim(&clock, step.as_ref()),
        control,
        ring,
    );
    let start_ns = monotonic_now_ns();
    disp.walk(0, start_cycle);
    let mut warnings = Vec::new();
    if let Some(step) = &step {
        step.lockstep.finish();
        if step.stalled.get() {
            warnings.push(format!(
                "simulated time: another process made no progress for {}s; this process went on without it, so its outputs may differ",
                lockstep::STALL_TIMEOUT.as_secs()
            ));
        }
    }
    // As in real time, ports are torn down only once every process has walked its tables.
    if let Some(barrier) = hooks.barrier {
        walk_done_and_wait(barrier, true, lockstep::STALL_TIMEOUT);
    }
    // `finish` consumes the dispatcher and with it the ring's producer, which lets the
    // drainer's final pass see the ring closed.
    let outcome = disp.finish(usize::MAX);
    let trace = drainer
        .map(tracing::stop_drainer)
        .transpose()
        .map_err(RunError::Trace)?;
    Ok(Outcome {
        realtime: false,
        start_ns,
        cores: vec![outcome],
        warnings,
        trace,
    })
}

/// What a real-time dispatcher thread tells the coordinator once it is built.
type Ready = (usize, Result<(), RunError>);

fn run_real(
    setup: &Setup<'_>,
    opts: &RunOptions,
    control: &RunControl,
    hooks: Hooks<'_>,
) -> Result<Outcome, RunError> {
    let priority = opts.priority.unwrap_or(setup.d.priority);
    let mut warnings = Vec::new();
    let realtime = match rt::probe_realtime(priority) {
        Ok(()) => true,
        Err(reason) if opts.allow_non_rt => {
            warnings.push(format!(
                "NOT REAL-TIME: {reason}; running at normal priority because --allow-non-rt was given: releases may be late and outputs may differ"
            ));
            false
        }
        Err(reason) => return Err(RunError::NotRealtime { priority, reason }),
    };
    if realtime {
        if let Err(w) = rt::lock_memory() {
            warnings.push(w);
        }
    }
    let cores = planned_cores(setup);
    let startup = Duration::from_nanos(opts.startup_timeout_ns);
    // Without a shared rendezvous, this run's own dispatchers meet at the end.
    let local_walked = crate::sync::AtomicU64::new(0);
    let barrier = hooks.barrier.unwrap_or(WalkBarrier {
        walked: &local_walked,
        dispatchers: cores.len(),
    });
    let (producers, mut consumers) = match &setup.trace {
        Some(t) => {
            let (p, c) = tracing::rings(t, &cores).map_err(RunError::Trace)?;
            (p.into_iter().map(Some).collect(), Some(c))
        }
        None => (
            cores
                .iter()
                .map(|_| None)
                .collect::<Vec<Option<RingProducer>>>(),
            None,
        ),
    };
    let mut drainer = None;
    let result = std::thread::scope(|s| {
        let (ready_tx, ready_rx) = crossbeam::channel::bounded::<Ready>(cores.len());
        let mut epoch_txs = Vec::with_capacity(cores.len());
        let mut handles = Vec::with_capacity(cores.len());
        for (&core, ring) in cores.iter().zip(producers) {
            let (epoch_tx, epoch_rx) = crossbeam::channel::bounded::<Option<JoinAt>>(1);
            epoch_txs.push(epoch_tx);
            let ready_tx = ready_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("takt-core{core}"))
                .spawn_scoped(s, move || {
                    let body = std::panic::AssertUnwindSafe(|| {
                        core_thread(
                            setup, core, realtime, priority, control, &ready_tx, &epoch_rx,
                            startup, ring, barrier,
                        )
                    });
                    std::panic::catch_unwind(body).unwrap_or_else(|p| {
                        let what = panic_text(&p);
                        let _ = ready_tx.try_send((
                            core,
                            Err(RunError::Panicked {
                                core,
                                what: what.clone(),
                            }),
                        ));
                        Err(RunError::Panicked { core, what })
                    })
                });
            match spawned {
                Ok(h) => handles.push((core, h)),
                Err(e) => {
                    drop(epoch_txs); // threads already started see no epoch and give up
                    for (_, h) in handles {
                        let _ = h.join();
                    }
                    return Err(RunError::Core {
                        core,
                        reason: format!("cannot start the dispatcher thread: {e}"),
                    });
                }
            }
        }
        drop(ready_tx);
        // Every core builds its tasks; the epoch is published only when all are ready.
        let deadline = std::time::Instant::now() + startup;
        let mut ready: Vec<usize> = Vec::new();
        let mut failure: Option<RunError> = None;
        while ready.len() < cores.len() && failure.is_none() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match ready_rx.recv_timeout(left) {
                Ok((core, Ok(()))) => ready.push(core),
                Ok((_, Err(e))) => failure = Some(e),
                Err(_) => {
                    failure = Some(RunError::StartupTimeout {
                        cores: cores
                            .iter()
                            .copied()
                            .filter(|c| !ready.contains(c))
                            .collect(),
                        timeout_ns: opts.startup_timeout_ns,
                    })
                }
            }
        }
        let join = match (&failure, hooks.join) {
            (Some(_), _) => None,
            // The supervisor publishes the epoch once every process is ready; it waits
            // for the slowest one, so allow it the same startup time again.
            (None, Some(hook)) => match hook(startup) {
                Ok(j) => Some(j),
                Err(why) => {
                    failure = Some(RunError::Join(why));
                    None
                }
            },
            (None, None) => Some(JoinAt {
                epoch_ns: monotonic_now_ns() + opts.epoch_margin_ns,
                start_cycle: setup.start_cycle,
            }),
        };
        let start_ns = join.map_or(0, |j| j.epoch_ns);
        if let (None, Some(t), Some(c)) = (&failure, &setup.trace, consumers.take()) {
            let header = tracing::header(setup.d, setup.plan, t, trace::ClockKind::Real, start_ns);
            match tracing::start_drainer(&header, t, c) {
                Ok(d) => drainer = Some(d),
                Err(e) => failure = Some(RunError::Trace(e)),
            }
        }
        for tx in &epoch_txs {
            let _ = tx.send(if failure.is_none() { join } else { None });
        }
        let mut outcomes = Vec::with_capacity(handles.len());
        for (core, h) in handles {
            match h.join() {
                Ok(Ok(Some(o))) => outcomes.push(o),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    failure.get_or_insert(e);
                }
                Err(_) => {
                    failure.get_or_insert(RunError::Panicked {
                        core,
                        what: "unknown panic".into(),
                    });
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok((start_ns, outcomes)),
        }
    });
    if realtime {
        rt::unlock_memory();
    }
    // Every dispatcher thread has ended and dropped its ring producer: finish the file.
    let trace = drainer
        .map(tracing::stop_drainer)
        .transpose()
        .map_err(RunError::Trace)?;
    let (start_ns, outcomes) = result?;
    Ok(Outcome {
        realtime,
        start_ns,
        cores: outcomes,
        warnings,
        trace,
    })
}

/// The body of one real-time dispatcher thread: set up, build, report ready, wait for the
/// epoch, walk, finish. Returns `None` when the run was aborted before the epoch.
#[allow(clippy::too_many_arguments)]
fn core_thread(
    setup: &Setup<'_>,
    core: usize,
    realtime: bool,
    priority: u8,
    control: &RunControl,
    ready_tx: &crossbeam::channel::Sender<Ready>,
    epoch_rx: &crossbeam::channel::Receiver<Option<JoinAt>>,
    startup: Duration,
    ring: Option<RingProducer>,
    barrier: WalkBarrier<'_>,
) -> Result<Option<CoreOutcome>, RunError> {
    let fail = |e: RunError| {
        let _ = ready_tx.send((core, Err(e.clone())));
        Err(e)
    };
    if let Err(reason) = rt::pin_current(core) {
        return fail(RunError::Core { core, reason });
    }
    // A supervised process may be a restart joining a running schedule: it builds its tasks
    // at normal priority (see below). A whole run built at once takes SCHED_FIFO first.
    let fifo_after_build = setup.joins_running;
    if realtime && !fifo_after_build {
        if let Err(reason) = rt::set_fifo_current(priority) {
            return fail(RunError::Core { core, reason });
        }
    }
    let node = match PortNode::new(&setup.namespace) {
        Ok(n) => n,
        Err(e) => {
            return fail(RunError::Core {
                core,
                reason: e.to_string(),
            })
        }
    };
    let tables = tables_for(setup, &[core]);
    let hosted = match build_tasks(setup, &node, &tables) {
        Ok(h) => h,
        Err(reason) => return fail(RunError::TaskBuild { core, reason }),
    };
    // SCHED_FIFO only once the tasks are built: building (shared-memory setup, allocation)
    // is not real-time work, and an app process restarted mid-run must not take the core
    // from the other apps' running dispatchers at their priority while it builds.
    if realtime && fifo_after_build {
        if let Err(reason) = rt::set_fifo_current(priority) {
            return fail(RunError::Core { core, reason });
        }
    }
    let mut disp = Dispatcher::new(
        setup,
        tables,
        hosted,
        RunClock::Real(MonotonicClock::new()),
        control,
        ring,
    );
    disp.spin_margin_ns = setup.d.wake.for_core(core).margin_ns();
    if ready_tx.send((core, Ok(()))).is_err() {
        return Ok(None);
    }
    // Wait a little longer than the coordinator does (it may wait for the ready cores, then
    // for the join hook), so its verdict always arrives.
    match epoch_rx.recv_timeout(startup * 2 + Duration::from_secs(1)) {
        Ok(Some(join)) => {
            // Every process of the run is ready, so every port exists: connect them all
            // now, before the epoch, rather than in each task's first job.
            disp.connect_ports();
            let end = disp.walk(join.epoch_ns, join.start_cycle.max(setup.start_cycle));
            // Tearing down ports disconnects iceoryx2 connections, which costs the peers
            // on other cores (and in other processes) milliseconds in their next send: so
            // no core finishes (and drops its tasks) until every core has walked its last
            // window. Only the app's owner counts towards the rendezvous; a version standing
            // by waits with it, and one dismissed mid-run leaves at once.
            if !end.dismissed {
                let h_ns = setup.plan.hyperperiod_ns;
                walk_done_and_wait(
                    barrier,
                    end.owner,
                    Duration::from_nanos(h_ns.saturating_mul(2)) + Duration::from_secs(1),
                );
            }
            Ok(Some(disp.finish(core)))
        }
        _ => Ok(None),
    }
}

/// Called by each dispatcher after its last window: waits (sleeping 1 ms at a time, off the
/// real-time path) until all of the barrier's dispatchers have walked their tables or
/// `timeout` passes.
fn walk_done_and_wait(barrier: WalkBarrier<'_>, counts: bool, timeout: Duration) {
    use crate::sync::Ordering;
    if counts {
        // SYNC POINT: AcqRel pairs with the Acquire loads of the other waiters.
        barrier.walked.fetch_add(1, Ordering::AcqRel);
    }
    let until = std::time::Instant::now() + timeout;
    while (barrier.walked.load(Ordering::Acquire) as usize) < barrier.dispatchers
        && std::time::Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

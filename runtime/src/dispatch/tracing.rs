//! The dispatcher's side of tracing: the file header built from the deployment and plan,
//! and the per-core emitter that turns each job's events into ring records.
//!
//! Pushing a record is a store into a preallocated ring slot plus two atomics; a full ring
//! drops the record and counts it (the drainer writes a `Dropped` marker in its place), so
//! tracing never blocks or allocates on the hot path.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::manifest::Deployment;
use crate::plan::Plan;
use crate::time::MonoNs;
use crate::trace::ModeTasks;
use crate::trace::{
    self, ChainInfo, Drainer, DrainerError, RingCapacityError, RingConsumer, RingProducer,
    TaskInfo, TraceHeader, TraceRecord, TraceWriteError, TraceWriter,
};

/// Where and how to record a trace of the run.
#[derive(Clone, Debug)]
pub struct TraceOptions {
    pub path: PathBuf,
    /// SHA-256 of the manifest text, so files of one deployment can be matched.
    pub manifest_hash: [u8; 32],
    /// Records per core ring (a power of two). 65536 records hold about 30 s of the demo.
    pub ring_records: usize,
    /// The process (app) name written into the header.
    pub app_name: String,
}

impl TraceOptions {
    pub fn new(path: impl Into<PathBuf>, manifest_hash: [u8; 32]) -> Self {
        TraceOptions {
            path: path.into(),
            manifest_hash,
            ring_records: 1 << 16,
            app_name: "takt".into(),
        }
    }
}

/// How often the drainer empties the rings.
const DRAIN_PERIOD: Duration = Duration::from_millis(5);
/// How long the end of a run waits for the drainer's final drain and fsync.
const DRAIN_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The header of a trace of `d` run with `plan`.
pub(super) fn header(
    d: &Deployment,
    plan: &Plan,
    opts: &TraceOptions,
    clock: trace::ClockKind,
    epoch: MonoNs,
) -> TraceHeader {
    let mut h = TraceHeader::new(opts.app_name.clone(), clock);
    h.manifest_hash = opts.manifest_hash;
    h.epoch_ns = epoch.get();
    h.hyperperiod_ns = plan.hyperperiod_ns;
    h.task_names = d.tasks.iter().map(|t| t.name.clone()).collect();
    h.topic_names = d.channels.iter().map(|c| c.topic.clone()).collect();
    h.mode_names = d.modes.iter().map(|m| m.name.clone()).collect();
    h.tasks = d
        .tasks
        .iter()
        .map(|t| TaskInfo {
            core: t.core as u32,
            period_ns: t.period_ns,
            offset_ns: t.offset_ns,
            budget_ns: t.budget_ns,
            let_ns: t.let_ns,
        })
        .collect();
    h.chains = d
        .chains
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let bound = plan.chains.get(i);
            ChainInfo {
                name: c.name.clone(),
                tasks: c.tasks.iter().map(|&t| t as u32).collect(),
                ports: c
                    .topics
                    .iter()
                    .map(|topic| port_id(d, topic).unwrap_or(u16::MAX))
                    .collect(),
                max_data_age_ns: bound.map_or(0, |b| b.max_data_age_ns),
                max_reaction_ns: bound.map_or(0, |b| b.max_reaction_ns),
            }
        })
        .collect();
    h.mode_tasks = Some(mode_tasks(d, plan));
    h
}

/// Which tasks each mode's tables release: read from the plan's windows rather than the
/// manifest's mode lists, because the windows are what the dispatchers walk.
fn mode_tasks(d: &Deployment, plan: &Plan) -> ModeTasks {
    let mut tasks: Vec<Vec<u32>> = vec![Vec::new(); d.modes.len()];
    for m in &plan.modes {
        if let Some(set) = tasks.get_mut(m.mode) {
            set.extend(
                m.cores
                    .iter()
                    .flat_map(|t| t.windows.iter().map(|w| w.task as u32)),
            );
            set.sort_unstable();
            set.dedup();
        }
    }
    ModeTasks {
        default_mode: d.default_mode as u64,
        tasks,
    }
}

/// The port id of `topic` in trace records: its channel's index.
pub(super) fn port_id(d: &Deployment, topic: &str) -> Option<u16> {
    d.channels
        .iter()
        .position(|c| c.topic == topic)
        .and_then(|i| u16::try_from(i).ok())
}

/// One ring per dispatcher: the producers go to the dispatchers, the consumers to the drainer.
pub(super) fn rings(
    opts: &TraceOptions,
    cores: &[usize],
) -> Result<(Vec<RingProducer>, Vec<RingConsumer>), RunTraceError> {
    let mut producers = Vec::with_capacity(cores.len());
    let mut consumers = Vec::with_capacity(cores.len());
    for &core in cores {
        let (p, c) = trace::channel(opts.ring_records, super::core_byte(core))
            .map_err(|source| RunTraceError::Ring { core, source })?;
        producers.push(p);
        consumers.push(c);
    }
    Ok((producers, consumers))
}

/// Creates the trace file and starts draining the rings into it.
pub(super) fn start_drainer(
    header: &TraceHeader,
    opts: &TraceOptions,
    consumers: Vec<RingConsumer>,
) -> Result<Drainer, RunTraceError> {
    let writer = TraceWriter::create(&opts.path, header).map_err(RunTraceError::Create)?;
    trace::spawn_drainer(consumers, writer, DRAIN_PERIOD).map_err(RunTraceError::Start)
}

/// Stops the drainer after the dispatchers dropped their producers.
pub(super) fn stop_drainer(drainer: Drainer) -> Result<TraceSummary, RunTraceError> {
    let s = drainer
        .stop(DRAIN_STOP_TIMEOUT)
        .map_err(RunTraceError::Finish)?;
    Ok(TraceSummary {
        path: s.path,
        records: s.records,
        dropped: s.dropped,
        bytes: s.bytes,
        rings_unfinished: s.rings_unfinished,
    })
}

/// Tracing a run failed: its rings, its file or its drainer.
#[derive(Debug)]
pub enum RunTraceError {
    /// A core's ring could not be made (the ring size in [`TraceOptions`] is refused).
    Ring {
        core: usize,
        source: RingCapacityError,
    },
    /// The trace file could not be created.
    Create(TraceWriteError),
    /// The drainer thread could not be started.
    Start(DrainerError),
    /// The drainer could not finish the file at the end of the run.
    Finish(DrainerError),
}

impl fmt::Display for RunTraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunTraceError::Ring { core, source } => {
                write!(f, "trace ring for core {core}: {source}")
            }
            RunTraceError::Create(e) => e.fmt(f),
            RunTraceError::Start(e) => e.fmt(f),
            RunTraceError::Finish(e) => write!(f, "the trace could not be finished: {e}"),
        }
    }
}

impl std::error::Error for RunTraceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunTraceError::Ring { source, .. } => Some(source),
            RunTraceError::Create(e) => Some(e),
            RunTraceError::Start(e) | RunTraceError::Finish(e) => Some(e),
        }
    }
}

/// What the trace of a run holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceSummary {
    pub path: PathBuf,
    /// Records written, `Dropped` markers included.
    pub records: u64,
    /// Records lost because a ring was full (counted in the file, never hidden).
    pub dropped: u64,
    pub bytes: u64,
    /// Rings the final drain could not empty (their tail is missing from the file).
    pub rings_unfinished: usize,
}

/// A dispatcher's handle on its ring. `None` when the run is not traced.
pub(super) struct Emitter {
    ring: Option<RingProducer>,
}

impl Emitter {
    pub fn new(ring: Option<RingProducer>) -> Self {
        Emitter { ring }
    }

    pub fn enabled(&self) -> bool {
        self.ring.is_some()
    }

    /// Pushes one record; a full ring counts it as dropped. Allocation and lock free.
    #[inline]
    pub fn emit(&self, rec: TraceRecord) {
        if let Some(ring) = &self.ring {
            let _ = ring.push(rec);
        }
    }
}

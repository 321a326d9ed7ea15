//! Building a dispatcher's inputs, before the epoch: which cores and windows this process
//! hosts, each task's port bindings, and the tasks themselves.
//!
//! Owns: [`build_tasks`] (every hosted task constructed through its registered constructor,
//! its ports opened) and the per-task state the walk keeps ([`Hosted`], [`Probe`]). It runs
//! before the walk, so it may allocate and open shared memory; it must never be called from
//! the walk.

use super::*;
use crate::rng::SplitMix64;
use crate::task::TaskBuildError;

/// A hosted task could not be built: the plan, the deployment and the registry disagree,
/// or the task's own constructor refused.
#[derive(Debug)]
pub enum HostBuildError {
    /// The plan names a task index the deployment does not have.
    UnknownTask { id: TaskId },
    /// A channel carries a message type no linked app registers.
    UnregisteredType { topic: String, type_name: String },
    /// No constructor is registered for the task's implementation.
    NoConstructor {
        task: String,
        source: TaskBuildError,
    },
    /// The task's constructor (or a port it opened) refused.
    Task(TaskBuildError),
}

impl fmt::Display for HostBuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostBuildError::UnknownTask { id } => write!(
                f,
                "the plan names task #{id}, which the deployment does not have"
            ),
            HostBuildError::UnregisteredType { topic, type_name } => write!(
                f,
                "channel `{topic}` carries type `{type_name}`, which no linked app registers"
            ),
            HostBuildError::NoConstructor { task, source } => write!(f, "task `{task}`: {source}"),
            HostBuildError::Task(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for HostBuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HostBuildError::NoConstructor { source, .. } | HostBuildError::Task(source) => {
                Some(source)
            }
            _ => None,
        }
    }
}

/// The cores the hosted tasks have windows on, in any mode, ascending.
pub(super) fn planned_cores(setup: &Setup<'_>) -> Vec<usize> {
    hosted_cores(setup.plan, setup.tasks.as_deref())
}

/// The windows one dispatcher walks in each mode: one core's table, or (simulated time)
/// all cores' tables merged by start time, ties broken by core. Only hosted tasks' windows.
pub(super) fn tables_for(setup: &Setup<'_>, cores: &[usize]) -> Vec<Vec<Window>> {
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
pub(super) fn bindings(setup: &Setup<'_>, id: TaskId) -> Result<Vec<PortBinding>, HostBuildError> {
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
            .ok_or_else(|| HostBuildError::UnregisteredType {
                topic: ch.topic.clone(),
                type_name: ch.type_name.clone(),
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
pub(super) struct Hosted {
    pub(super) id: TaskId,
    pub(super) task: Box<dyn Task>,
    pub(super) rec: TaskRecorder,
    pub(super) skip_next: bool,
    /// Who the overrun that set `skip_next` is charged to.
    pub(super) skip_attribution: Attribution,
    pub(super) rng: SplitMix64,
    /// The generator of injected platform stalls (separate from `rng`, so injecting stalls
    /// leaves the execution-time jitter, and with it the outputs, unchanged).
    pub(super) stall_rng: SplitMix64,
    pub(super) probes: Vec<Probe>,
}

/// One port of a hosted task, watched for trace records after each job.
pub(super) struct Probe {
    pub(super) port: u16,
    pub(super) is_writer: bool,
    pub(super) activity: ActivityCell,
    /// The port's iceoryx2 end: [`Dispatcher::connect_ports`] connects it before the walk.
    pub(super) connect: crate::port::Connector,
    /// The activity's `ops` when it was last traced.
    pub(super) traced_ops: u64,
}

/// Builds, on the calling thread, every task that has a window in `tables`.
pub(super) fn build_tasks(
    setup: &Setup<'_>,
    node: &PortNode,
    tables: &[Vec<Window>],
) -> Result<Vec<Hosted>, HostBuildError> {
    let d = setup.d;
    let mut ids: Vec<TaskId> = tables.iter().flatten().map(|w| w.task).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut hosted = Vec::with_capacity(ids.len());
    for id in ids {
        let spec = d.tasks.get(id).ok_or(HostBuildError::UnknownTask { id })?;
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
            .map_err(|source| HostBuildError::NoConstructor {
                task: spec.name.clone(),
                source,
            })?;
        let task = ctor(&builder).map_err(HostBuildError::Task)?;
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
            rng: SplitMix64::new(seed),
            stall_rng: SplitMix64::new(stall_seed),
            probes,
        });
    }
    Ok(hosted)
}

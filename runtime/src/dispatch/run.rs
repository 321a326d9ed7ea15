//! Running dispatchers: one thread per core in real time, one thread for every core in
//! simulated time; each builds its tasks, reports ready, waits for the epoch, walks and
//! finishes.
//!
//! Owns: the dispatcher's construction and end ([`Dispatcher::new`],
//! [`Dispatcher::finish`]), the pinned SCHED_FIFO threads and their start-up handshake, the
//! trace drainer's life, and the barrier that keeps ports alive until every process has
//! walked. It must never run a window itself (that is `walk.rs`).

use super::build::{build_tasks, planned_cores, tables_for, Hosted};
use super::walk::{Dispatcher, RunClock, SimStep};
use super::*;

impl<'a> Dispatcher<'a> {
    pub(super) fn new(
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
    pub(super) fn connect_ports(&self) {
        for h in &self.hosted {
            for p in &h.probes {
                let _ = p.connect.update_connections();
            }
        }
    }

    /// After the last job: lets every task report, off the real-time path.
    pub(super) fn finish(mut self, core: usize) -> CoreOutcome {
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

pub(super) fn run_sim(
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
    let hosted = build_tasks(setup, &node, &tables).map_err(|e| RunError::TaskBuild {
        core: first_core,
        reason: e.to_string(),
    })?;
    let (ring, drainer) = match &setup.trace {
        Some(t) => {
            let (mut producers, consumers) =
                tracing::rings(t, &[first_core]).map_err(RunError::from)?;
            let header = tracing::header(setup.d, setup.plan, t, ClockKind::Sim, MonoNs(0));
            let drainer = tracing::start_drainer(&header, t, consumers).map_err(RunError::from)?;
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
    disp.walk(MonoNs(0), start_cycle);
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
        .map_err(RunError::from)?;
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

pub(super) fn run_real(
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
        Err(reason) => {
            return Err(RunError::NotRealtime {
                priority,
                reason: reason.to_string(),
            })
        }
    };
    if realtime {
        if let Err(w) = rt::lock_memory() {
            warnings.push(w.to_string());
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
            let (p, c) = tracing::rings(t, &cores).map_err(RunError::from)?;
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
                epoch: MonoNs(monotonic_now_ns() + opts.epoch_margin_ns),
                start_cycle: setup.start_cycle,
            }),
        };
        let start = join.map_or(MonoNs(0), |j| j.epoch);
        let start_ns = start.get();
        if let (None, Some(t), Some(c)) = (&failure, &setup.trace, consumers.take()) {
            let header = tracing::header(setup.d, setup.plan, t, ClockKind::Real, start);
            match tracing::start_drainer(&header, t, c) {
                Ok(d) => drainer = Some(d),
                Err(e) => failure = Some(RunError::from(e)),
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
        .map_err(RunError::from)?;
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
pub(super) fn core_thread(
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
        return fail(RunError::Core {
            core,
            reason: reason.to_string(),
        });
    }
    // A supervised process may be a restart joining a running schedule: it builds its tasks
    // at normal priority (see below). A whole run built at once takes SCHED_FIFO first.
    let fifo_after_build = setup.joins_running;
    if realtime && !fifo_after_build {
        if let Err(reason) = rt::set_fifo_current(priority) {
            return fail(RunError::Core {
                core,
                reason: reason.to_string(),
            });
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
        Err(e) => {
            return fail(RunError::TaskBuild {
                core,
                reason: e.to_string(),
            })
        }
    };
    // SCHED_FIFO only once the tasks are built: building (shared-memory setup, allocation)
    // is not real-time work, and an app process restarted mid-run must not take the core
    // from the other apps' running dispatchers at their priority while it builds.
    if realtime && fifo_after_build {
        if let Err(reason) = rt::set_fifo_current(priority) {
            return fail(RunError::Core {
                core,
                reason: reason.to_string(),
            });
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
            let end = disp.walk(join.epoch, join.start_cycle.max(setup.start_cycle));
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
pub(super) fn walk_done_and_wait(barrier: WalkBarrier<'_>, counts: bool, timeout: Duration) {
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

pub(super) fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

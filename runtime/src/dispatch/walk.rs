//! The hot path: one dispatcher walking its tables, window by window, from the epoch to
//! the end of the run. This file holds the walk and nothing else: building the dispatcher
//! is `build.rs`/`run.rs`, its threads and the run's end are `run.rs`.
//!
//! Owns: [`Dispatcher::walk`] (per hyperperiod: the mode decision, the standby and handover
//! check of a supervised process, the heartbeat, then every window of the mode's table) and
//! [`Dispatcher::job`] (per window: wait for the start, run `step`, measure release
//! lateness, execution and CPU time, trace, attribute and apply the overrun and fault
//! policies), and the time base they run on ([`RunClock`]: the monotonic clock, or simulated
//! time in lockstep with the other processes).
//!
//! It must never allocate, take a lock or make a system call other than the absolute sleep,
//! the `CLOCK_MONOTONIC` reads (vDSO), the two reads of the thread's CPU time per job, and
//! whatever the port operations inside `step` do: tasks, ports, tables and histograms are
//! all built before the epoch, and mode decisions are one compare-and-swap on the shared
//! [`RunControl`]. It never logs.

use super::build::Hosted;
use super::*;
use crate::time::{LogicalNs, MonoNs};

/// How a dispatcher's walk ended.
#[derive(Clone, Copy, Debug)]
pub(super) struct WalkEnd {
    /// It ran the app's windows at the end (not standing by for another version).
    pub(super) owner: bool,
    /// The supervisor dismissed it while it stood by: the run goes on without it.
    pub(super) dismissed: bool,
}

/// One dispatcher: a table per mode, the tasks it hosts, and where to find them.
pub(super) struct Dispatcher<'a> {
    pub(super) setup: &'a Setup<'a>,
    pub(super) tables: Vec<Vec<Window>>,
    /// Task id → index into `hosted`.
    pub(super) slot: Vec<Option<usize>>,
    pub(super) hosted: Vec<Hosted>,
    pub(super) clock: RunClock<'a>,
    pub(super) epoch_ns: u64,
    pub(super) control: &'a RunControl,
    pub(super) emit: Emitter,
    /// When the previous job of this walk ended (0: none yet), on the run's clock.
    pub(super) previous_end_ns: u64,
    /// The thread's CPU time at the previous job's end (real time only).
    pub(super) previous_end_cpu_ns: u64,
    /// The platform's share of the previous job's delay, which a backlog passes on.
    pub(super) carry_platform_ns: u64,
    /// How long before each window the dispatcher stops sleeping and spins (0: it
    /// sleeps to the start). The deployment's `wake` for this dispatcher's core.
    pub(super) spin_margin_ns: u64,
}

impl Dispatcher<'_> {
    /// Walks the tables from the epoch, starting at cycle `start_cycle`, until the run
    /// ends. The hot path: see the module docs.
    pub(super) fn walk(&mut self, epoch: MonoNs, start_cycle: u64) -> WalkEnd {
        self.epoch_ns = epoch.get();
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
                let now = self.clock.now();
                let core = self.tables_core();
                self.emit.emit(TraceRecord::mode_switch(
                    core,
                    cycle,
                    LogicalNs(cycle * h_ns),
                    now,
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
        self.hosted
            .first()
            .map_or(0, |h| core_byte(self.setup.d.tasks[h.id].core))
    }

    /// Runs one window's job in the cycle starting at logical `cycle_ns`.
    fn job(&mut self, w: &Window, cycle_ns: u64) {
        let planned_ns = self.epoch_ns + cycle_ns + w.start_ns;
        let spun_ns = self.clock.wake_at_ns(planned_ns, self.spin_margin_ns);
        let start = self.clock.now();
        let start_ns = start.get();
        let real = matches!(self.clock, RunClock::Real(_));
        // The thread's CPU time: see the module docs (Attribution) for its cost.
        let start_cpu_ns = if real { rt::thread_cpu_ns() } else { 0 };
        let Some(Some(i)) = self.slot.get(w.task).copied() else {
            return; // tables only hold hosted tasks (built from the same tables)
        };
        let spec = &self.setup.d.tasks[w.task];
        let h = &mut self.hosted[i];
        let core = core_byte(spec.core);
        let task = w.task as u32;
        let release = LogicalNs(cycle_ns + w.release_ns);
        let release_ns = release.get();
        let index = release_ns.saturating_sub(spec.offset_ns) / spec.period_ns.max(1);
        let emit = &self.emit;
        emit.emit(TraceRecord::release(
            core,
            task,
            index,
            release,
            start,
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
                release,
                start,
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
                h.rng.next_u64() % (max + 1)
            }
            _ => 0,
        };
        let stall_ns = match self.setup.platform_stall {
            Some(p)
                if p.every_jobs > 0
                    && p.stall_ns > 0
                    && h.stall_rng.next_u64().is_multiple_of(p.every_jobs) =>
            {
                p.stall_ns
            }
            _ => 0,
        };
        // Only simulated time needs a second, physical clock reading (its clock does not
        // move during `step`); real time measures with the one clock it already reads.
        let physical_start_ns = if real { 0 } else { monotonic_now_ns() };
        emit.emit(TraceRecord::start(core, task, index, release, start));
        self.clock.spend_ns(jitter_ns);
        h.task.step(&ctx);
        if stall_ns > 0 {
            self.clock.stall_ns(stall_ns);
        }
        let end = self.clock.now();
        let end_ns = end.get();
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
                        release,
                        end,
                        p.port,
                        a.seq,
                        a.visible_at_ns,
                    )
                } else {
                    TraceRecord::read(core, task, index, release, end, p.port, a.seq)
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
            release,
            end,
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
                release,
                end,
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
                release,
                end,
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
                release,
                end,
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
}

/// Simulated time shared with other processes, and whether a wait for them gave up.
pub(super) struct SimStep<'a> {
    pub(super) lockstep: lockstep::Lockstep<'a>,
    pub(super) stalled: std::cell::Cell<bool>,
}

/// The time base of one dispatcher.
pub(super) enum RunClock<'a> {
    Real(MonotonicClock),
    Sim(&'a SimClock, Option<&'a SimStep<'a>>),
}

impl RunClock<'_> {
    /// The current instant on this run's clock: what every trace record's time is.
    pub(super) fn now(&self) -> MonoNs {
        MonoNs(match self {
            RunClock::Real(c) => c.now_ns(),
            RunClock::Sim(c, _) => c.now_ns(),
        })
    }
    pub(super) fn sleep_until_ns(&self, t: u64) {
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
    pub(super) fn wake_at_ns(&self, t: u64, margin_ns: u64) -> u64 {
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
    pub(super) fn spend_ns(&self, ns: u64) {
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
    pub(super) fn stall_ns(&self, ns: u64) {
        match self {
            RunClock::Real(_) => std::thread::sleep(Duration::from_nanos(ns)),
            RunClock::Sim(c, _) => c.advance_ns(ns),
        }
    }
}

//! The shared state between the dispatchers of one run and whoever steers it: the mode of
//! every hyperperiod cycle, stop requests, and live progress counters.
//!
//! # Mode and stop decisions
//!
//! Every dispatcher asks [`RunControl::mode_for_cycle`] at the start of each cycle. The
//! first dispatcher to reach cycle `n` decides its mode with one compare-and-swap on a
//! single packed word (`cycle`, `mode`, `previous mode`, `pending request`); every other
//! dispatcher reads that decision. So all cores switch at the same hyperperiod boundary,
//! even when a request arrives while some cores are already in cycle `n` and others are
//! not yet: a request that loses the race simply applies one cycle later, on every core.
//! A dispatcher running one whole cycle behind (it would already be missing releases)
//! still gets the right answer from the `previous mode` field.
//!
//! Requests (`request_mode`, `request_stop`) and decisions are lock-free and allocation
//! free, so a dispatcher may escalate an overrun to a mode switch from its hot path.
//!
//! ```text
//!   (1) request_mode(m) / request_stop()        sets `pending`
//!   (2) first dispatcher at cycle n            (n, pending or mode, mode, none)
//!   (3) other dispatchers at cycle n           read `mode`
//!   (4) a dispatcher still at cycle n-1        reads `previous`
//! ```

use crossbeam::utils::CachePadded;

use crate::sync::{AtomicU64, Ordering};

/// The pseudo-mode that ends the run.
pub const STOP: usize = 0xFE;
const NONE: u64 = 0xFF;
/// Real modes are `0..MAX_MODES`: the manifest validator bounds the count, so a mode can
/// never read as [`STOP`] or as no request, and every mode has a bit in a 64-bit mask.
pub const MAX_MODES: usize = crate::manifest::limits::MAX_MODES;
const _: () = assert!(MAX_MODES <= 64 && (MAX_MODES as u64) < STOP as u64);

/// A mode byte of the packed word: a real mode or [`STOP`].
fn is_decided_mode(m: u64) -> bool {
    m < MAX_MODES as u64 || m == STOP as u64
}

const MAX_RECORDED_SWITCHES: usize = 64;

/// Bit 63: a handover is requested and not yet decided.
const H_PENDING: u64 = 1 << 63;
/// Bit 62: the handover was decided at the word's cycle.
const H_NOW: u64 = 1 << 62;
/// Bit 61: the handover was decided at the cycle before the word's cycle.
const H_PREV: u64 = 1 << 61;
const FLAGS: u64 = H_PENDING | H_NOW | H_PREV;
const CYCLE_BITS: u64 = 37;

fn pack(cycle: u64, mode: u64, prev: u64, pending: u64) -> u64 {
    debug_assert!(is_decided_mode(mode) && is_decided_mode(prev));
    debug_assert!(is_decided_mode(pending) || pending == NONE);
    ((cycle & ((1 << CYCLE_BITS) - 1)) << 24) | (pending << 16) | (prev << 8) | mode
}

fn unpack(word: u64) -> (u64, u64, u64, u64) {
    let word = word & !FLAGS;
    (
        word >> 24,
        word & 0xFF,
        (word >> 8) & 0xFF,
        (word >> 16) & 0xFF,
    )
}

/// A request that, from one hyperperiod boundary on, incarnation `owner` of app `app` runs
/// the app's windows and every other incarnation of it stands by (OTA hot swap, rollback).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handover {
    /// 1 for the run's first handover, +1 for each later one.
    pub serial: u64,
    pub app: usize,
    pub owner: u32,
}

impl Handover {
    fn pack(self) -> u64 {
        // Validation bounds apps by MAX_APPS (64), so the app fits its byte; serials count
        // handovers of one run, far below 2^24.
        debug_assert!(self.app < 256, "app {} does not fit a handover", self.app);
        debug_assert!(self.serial < 1 << 24, "handover serial {}", self.serial);
        (self.serial << 40) | ((self.app as u64 & 0xFF) << 32) | u64::from(self.owner)
    }
    fn unpack(word: u64) -> Handover {
        Handover {
            serial: word >> 40,
            app: ((word >> 32) & 0xFF) as usize,
            owner: (word & 0xFFFF_FFFF) as u32,
        }
    }
}

/// What one dispatcher learns at the start of a cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CycleDecision {
    /// The mode of the cycle, or [`STOP`].
    pub mode: usize,
    /// The pending handover took effect at exactly this cycle.
    pub handover: bool,
}

/// Why a handover could not be requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoverError {
    /// Another handover is requested and not decided yet.
    Busy,
    /// The run is stopping.
    Stopping,
}

/// Steers and observes a running deployment. Create it with the default mode, hand it to
/// `dispatch::run`, and use it from any thread.
///
/// It is plain atomics with a fixed `#[repr(C)]` layout and no pointers, so one instance may
/// live in memory shared by several processes (the lifecycle manager's control block): then
/// every process decides the same mode for every cycle.
///
/// # Cache lines
///
/// The three words that dispatchers on different cores (and processes) write on the hot
/// path each have a line of their own ([`CachePadded`]: 128 bytes on x86_64 and aarch64,
/// where the spatial prefetcher pulls lines in pairs), so a write to one does not take the
/// line the others live in away from the cores about to use them:
/// * `state`: loaded by every dispatcher at every hyperperiod boundary, CASed by the first
///   to get there and by mode/stop/handover requests;
/// * `cycle`: `fetch_max` by every dispatcher at every boundary;
/// * `jobs`: `fetch_add` by every dispatcher after every job, the most frequent write here.
///
/// Everything after them is left unpadded: `overruns` moves only on an overrun, the
/// switch log only on a mode switch, and the handover words only when the supervisor
/// requests a handover or dismissal (and once per decided handover). They share lines
/// with each other but with none of the three hot words.
#[derive(Debug)]
#[repr(C)]
pub struct RunControl {
    /// Packed (cycle: 40 bits, pending: 8, previous: 8, mode: 8). Cycle counts from 1 so
    /// that cycle 0's decision is still to be made at start.
    state: CachePadded<AtomicU64>,
    cycle: CachePadded<AtomicU64>,
    jobs: CachePadded<AtomicU64>,
    // --- written rarely: unpadded (see the type's docs) ---
    overruns: AtomicU64,
    switches_len: AtomicU64,
    /// (cycle << 8 | mode) for each decided mode switch, first `switches_len` valid.
    switches: [AtomicU64; MAX_RECORDED_SWITCHES],
    /// The newest handover request ([`Handover::pack`]); 0 before the first.
    handover: AtomicU64,
    /// Bit m set: the pending handover may take effect in a cycle of mode m.
    handover_modes: AtomicU64,
    /// (serial << 40 | cycle + 1) of the newest decided handover; 0 before the first.
    handover_done: AtomicU64,
    /// (1 << 63 | app << 32 | incarnation): that process leaves its walk at its next cycle
    /// start while it stands by; 0 for none.
    dismissed: AtomicU64,
}

/// The line [`CachePadded`] pads to on this target (128 bytes on x86_64).
pub const CACHE_LINE: usize = std::mem::align_of::<CachePadded<u8>>();

// Each hot word starts a line of its own and the cold words start past the last of them.
const _: () = {
    use std::mem::offset_of;
    assert!(CACHE_LINE >= 64);
    assert!(std::mem::align_of::<RunControl>() == CACHE_LINE);
    assert!(offset_of!(RunControl, state).is_multiple_of(CACHE_LINE));
    assert!(offset_of!(RunControl, cycle) >= offset_of!(RunControl, state) + CACHE_LINE);
    assert!(offset_of!(RunControl, jobs) >= offset_of!(RunControl, cycle) + CACHE_LINE);
    assert!(offset_of!(RunControl, overruns) >= offset_of!(RunControl, jobs) + CACHE_LINE);
};

impl RunControl {
    /// # Panics
    /// When `default_mode` is not below [`MAX_MODES`] (the manifest validator refuses such
    /// a deployment, so this is a caller's bug).
    pub fn new(default_mode: usize) -> Self {
        assert!(default_mode < MAX_MODES, "mode {default_mode} out of range");
        let m = default_mode as u64;
        RunControl {
            state: CachePadded::new(AtomicU64::new(pack(0, m, m, NONE))),
            cycle: CachePadded::new(AtomicU64::new(0)),
            jobs: CachePadded::new(AtomicU64::new(0)),
            overruns: AtomicU64::new(0),
            switches_len: AtomicU64::new(0),
            switches: std::array::from_fn(|_| AtomicU64::new(0)),
            handover: AtomicU64::new(0),
            handover_modes: AtomicU64::new(0),
            handover_done: AtomicU64::new(0),
            dismissed: AtomicU64::new(0),
        }
    }

    /// Asks every core to switch to `mode` at the next hyperperiod boundary that no
    /// dispatcher has decided yet. Never blocks or allocates.
    ///
    /// # Panics
    /// When `mode` is not below [`MAX_MODES`]: modes come from a validated manifest, so
    /// this is a caller's bug, never something a manifest can cause.
    pub fn request_mode(&self, mode: usize) {
        assert!(mode < MAX_MODES, "mode {mode} out of range");
        self.set_pending(mode as u64);
    }

    /// Asks every core to stop at the next undecided hyperperiod boundary.
    pub fn request_stop(&self) {
        self.set_pending(STOP as u64);
    }

    fn set_pending(&self, pending: u64) {
        // SYNC POINT: Acquire pairs with the AcqRel CAS in `mode_for_cycle`, so the
        // request is built on the latest decision; the AcqRel CAS here publishes it to the
        // dispatcher that makes the next decision.
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            let (c, m, p, pend) = unpack(cur);
            if pend == STOP as u64 || m == STOP as u64 {
                return; // a stop is final; nothing may override it
            }
            match self.state.compare_exchange_weak(
                cur,
                pack(c, m, p, pending) | (cur & FLAGS),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }

    /// The mode of cycle `cycle` (0-based), deciding it if this is the first dispatcher to
    /// ask. Returns [`STOP`] when the run ends before this cycle.
    pub fn mode_for_cycle(&self, cycle: u64) -> usize {
        self.decide(cycle).mode
    }

    /// The mode of cycle `cycle` and whether the pending handover takes effect at it,
    /// deciding both if this is the first dispatcher to ask. A handover is decided in the
    /// same compare-and-swap as the cycle's mode, so every dispatcher of every process that
    /// runs the cycle sees it at the same boundary.
    pub fn decide(&self, cycle: u64) -> CycleDecision {
        let want = cycle + 1; // stored cycles are 1-based
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            let (c, m, p, pend) = unpack(cur);
            if c == want {
                return CycleDecision {
                    mode: m as usize,
                    handover: cur & H_NOW != 0,
                };
            }
            if c > want {
                // This dispatcher lags a whole cycle; the decision for its cycle is the
                // previous one. More lag than that cannot be answered: keep the previous.
                return CycleDecision {
                    mode: p as usize,
                    handover: c == want + 1 && cur & H_PREV != 0,
                };
            }
            let next = if pend == NONE { m } else { pend };
            let mut flags = 0;
            if cur & H_NOW != 0 && c + 1 == want {
                flags |= H_PREV;
            }
            if cur & H_PENDING != 0 {
                // SYNC POINT: the mask was stored before the request's Release CAS that set
                // H_PENDING, which the Acquire load of `cur` saw.
                let mask = self.handover_modes.load(Ordering::Acquire);
                if next != STOP as u64 && mask & (1 << next) != 0 {
                    flags |= H_NOW;
                } else {
                    flags |= H_PENDING;
                }
            }
            // SYNC POINT: AcqRel pairs with the Acquire loads of the other dispatchers and
            // with `set_pending`: exactly one CAS decides each cycle.
            match self.state.compare_exchange_weak(
                cur,
                pack(want, next, m, NONE) | flags,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if next != m && next != STOP as u64 && cycle > 0 {
                        self.record_switch(cycle, next);
                    }
                    if flags & H_NOW != 0 {
                        let serial = Handover::unpack(self.handover.load(Ordering::Acquire)).serial;
                        // SYNC POINT: Release pairs with the Acquire in `handover_done`;
                        // only the cycle's single winner writes it.
                        self.handover_done
                            .fetch_max((serial << 40) | want, Ordering::AcqRel);
                    }
                    return CycleDecision {
                        mode: next as usize,
                        handover: flags & H_NOW != 0,
                    };
                }
                Err(now) => cur = now,
            }
        }
    }

    /// Requests that from the next undecided cycle whose mode is in `modes_mask` (bit m for
    /// mode m; `u64::MAX` for any), incarnation `owner` runs app `app`. Returns the request.
    /// Only one handover may be pending at a time.
    pub fn request_handover(
        &self,
        app: usize,
        owner: u32,
        modes_mask: u64,
    ) -> Result<Handover, HandoverError> {
        let mut cur = self.state.load(Ordering::Acquire);
        let h = loop {
            let (_, m, _, pend) = unpack(cur);
            if pend == STOP as u64 || m == STOP as u64 {
                return Err(HandoverError::Stopping);
            }
            if cur & H_PENDING != 0 {
                return Err(HandoverError::Busy);
            }
            let serial = Handover::unpack(self.handover.load(Ordering::Acquire)).serial + 1;
            let h = Handover { serial, app, owner };
            // Written before H_PENDING is set, so every decider that sees the flag sees
            // them. The caller (the supervisor) is the only writer.
            self.handover.store(h.pack(), Ordering::Release);
            self.handover_modes.store(modes_mask, Ordering::Release);
            match self.state.compare_exchange(
                cur,
                cur | H_PENDING,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break h,
                Err(now) => cur = now,
            }
        };
        Ok(h)
    }

    /// Withdraws a handover that is still pending. Returns false when it was already decided
    /// (or none was pending): then it stands.
    pub fn cancel_handover(&self) -> bool {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur & H_PENDING == 0 {
                return false;
            }
            match self.state.compare_exchange_weak(
                cur,
                cur & !H_PENDING,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// The newest handover request (decided or not).
    pub fn handover(&self) -> Option<Handover> {
        let w = self.handover.load(Ordering::Acquire);
        (w != 0).then(|| Handover::unpack(w))
    }

    /// `(serial, cycle)` of the newest decided handover.
    pub fn handover_done(&self) -> Option<(u64, u64)> {
        let w = self.handover_done.load(Ordering::Acquire);
        (w != 0).then(|| (w >> 40, (w & ((1 << 40) - 1)) - 1))
    }

    /// Sends incarnation `incarnation` of app `app`, standing by, out of its walk (the
    /// version an update replaced, once the update is committed). Replaces an earlier
    /// dismissal.
    pub fn dismiss(&self, app: usize, incarnation: u32) {
        debug_assert!(app < 256, "app {app} does not fit a dismissal");
        // SYNC POINT: Release pairs with the Acquire in `is_dismissed`.
        self.dismissed.store(
            (1 << 63) | ((app as u64 & 0xFF) << 32) | u64::from(incarnation),
            Ordering::Release,
        );
    }

    /// Whether incarnation `incarnation` of app `app` was dismissed.
    pub fn is_dismissed(&self, app: usize, incarnation: u32) -> bool {
        self.dismissed.load(Ordering::Acquire)
            == (1 << 63) | ((app as u64 & 0xFF) << 32) | u64::from(incarnation)
    }

    /// Whether a handover is requested and not decided yet.
    pub fn handover_pending(&self) -> bool {
        self.state.load(Ordering::Acquire) & H_PENDING != 0
    }

    fn record_switch(&self, cycle: u64, mode: u64) {
        // Only the single winner of a cycle's decision records, so slots are never shared.
        debug_assert!(mode < 256, "mode {mode} does not fit a recorded switch");
        let i = self.switches_len.fetch_add(1, Ordering::AcqRel) as usize;
        if let Some(slot) = self.switches.get(i) {
            // SYNC POINT: Release pairs with the Acquire load in `mode_switches`.
            slot.store((cycle << 8) | mode, Ordering::Release);
        }
    }

    /// Decided switches as `(cycle, mode)` (at most 64 are kept), in order.
    pub fn mode_switches(&self) -> Vec<(u64, usize)> {
        let n = (self.switches_len.load(Ordering::Acquire) as usize).min(MAX_RECORDED_SWITCHES);
        self.switches[..n]
            .iter()
            .map(|s| {
                let v = s.load(Ordering::Acquire);
                (v >> 8, (v & 0xFF) as usize)
            })
            .collect()
    }

    /// The mode of the most recently decided cycle.
    pub fn active_mode(&self) -> usize {
        unpack(self.state.load(Ordering::Acquire)).1 as usize
    }

    /// The newest cycle any dispatcher has started.
    pub fn cycle(&self) -> u64 {
        self.cycle.load(Ordering::Relaxed)
    }

    /// Jobs completed so far on all cores.
    pub fn jobs_done(&self) -> u64 {
        self.jobs.load(Ordering::Relaxed)
    }

    /// Overruns so far on all cores.
    pub fn overruns(&self) -> u64 {
        self.overruns.load(Ordering::Relaxed)
    }

    // Progress counters are statistics only: nothing is ordered by them, so Relaxed.
    pub(crate) fn note_cycle(&self, cycle: u64) {
        self.cycle.fetch_max(cycle, Ordering::Relaxed);
    }
    pub(crate) fn note_job(&self) {
        self.jobs.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn note_overrun(&self) {
        self.overruns.fetch_add(1, Ordering::Relaxed);
    }
}

/// Buckets of [`AppHealth::cpu_histogram`]: a job's CPU time as a fraction of its budget,
/// in steps of 1/[`CPU_BUCKETS_PER_BUDGET`]; the last bucket holds everything from
/// `(CPU_BUCKETS - 1) / CPU_BUCKETS_PER_BUDGET` budgets up.
pub const CPU_BUCKETS: usize = 64;
/// Buckets per budget in [`AppHealth::cpu_histogram`] (resolution: 1/32 of the budget).
pub const CPU_BUCKETS_PER_BUDGET: u64 = 32;

/// One app process's health, as its dispatchers measure it: read by the lifecycle
/// manager's supervisor. Plain atomics with a fixed layout, so it may live in shared memory.
/// Every counter is a statistic that orders nothing, so all accesses are Relaxed.
///
/// The app's own processes write these counters, so a misbehaving app can rewrite them:
/// the supervisor's probation weighs them against what it observes itself (see
/// `lifecycle::supervisor::update`).
///
/// Cache lines: the control block gives each app's record lines of its own (it holds them
/// as `CachePadded<AppHealth>`), so apps on different cores never write a shared line.
/// Inside one record nothing is padded: all of its counters have the same writers, the
/// app's own dispatchers (one per core the app runs on: the heartbeat once per hyperperiod,
/// the CPU histogram once per job, the rest only on a miss, overrun or fault), which share
/// the counters themselves, so padding them apart would not stop the line moving between
/// those cores; the supervisor only reads them, at its poll rate.
#[derive(Debug)]
#[repr(C)]
pub struct AppHealth {
    /// 1 + the newest cycle any of the app's dispatchers started (0: none yet).
    heartbeat: AtomicU64,
    overruns: AtomicU64,
    /// Jobs that were skipped or ended after their LET deadline.
    missed: AtomicU64,
    /// Of `overruns`: those the platform caused (see [`super::attribution`]).
    overruns_platform: AtomicU64,
    /// Of `missed`: those the platform caused.
    missed_platform: AtomicU64,
    /// Jobs that reported a fault (`StepContext::fault`).
    faults: AtomicU64,
    /// Jobs by CPU time as a fraction of their budget (see [`CPU_BUCKETS`]).
    cpu_histogram: [AtomicU64; CPU_BUCKETS],
    /// The worst overrun of takt's or the task's own since the supervisor last took it
    /// ([`AppHealth::take_worst_own_overrun`]): its CPU time in thousandths of its budget
    /// (high 32 bits, so `fetch_max` keeps the worst) and its task's index in the
    /// deployment (low 32 bits); 0 for none.
    worst_own_overrun: AtomicU64,
}

/// The worst overrun of an app's own in a stretch of its run (see
/// [`AppHealth::take_worst_own_overrun`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnOverrun {
    /// The task's index in the deployment.
    pub task: usize,
    /// The job's CPU time in thousandths of its budget.
    pub cpu_permille: u64,
}

impl Default for AppHealth {
    fn default() -> Self {
        AppHealth::new()
    }
}

impl AppHealth {
    pub fn new() -> Self {
        AppHealth {
            heartbeat: AtomicU64::new(0),
            overruns: AtomicU64::new(0),
            missed: AtomicU64::new(0),
            overruns_platform: AtomicU64::new(0),
            missed_platform: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            cpu_histogram: std::array::from_fn(|_| AtomicU64::new(0)),
            worst_own_overrun: AtomicU64::new(0),
        }
    }
    /// Once per cycle per dispatcher: the heartbeat moves once per hyperperiod.
    pub(crate) fn beat(&self, cycle: u64) {
        self.heartbeat.fetch_max(cycle + 1, Ordering::Relaxed);
    }
    /// Counts one overrun of task `task` (its index in the deployment), whose job used
    /// `cpu_ns` of CPU time against a budget of `budget_ns`.
    pub(crate) fn note_overrun(
        &self,
        by: super::Attribution,
        task: usize,
        cpu_ns: u64,
        budget_ns: u64,
    ) {
        self.overruns.fetch_add(1, Ordering::Relaxed);
        if by == super::Attribution::Platform {
            self.overruns_platform.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let permille = (u128::from(cpu_ns) * 1000 / u128::from(budget_ns.max(1)))
            .min(u128::from(u32::MAX)) as u64;
        let task = (task as u64).min(u64::from(u32::MAX));
        self.worst_own_overrun
            .fetch_max(permille << 32 | task, Ordering::Relaxed);
    }
    /// The worst overrun of the app's own since the last call (`None`: none), and starts
    /// a new stretch. A probation takes it when its window starts and when it judges.
    pub fn take_worst_own_overrun(&self) -> Option<OwnOverrun> {
        let v = self.worst_own_overrun.swap(0, Ordering::Relaxed);
        (v != 0).then_some(OwnOverrun {
            task: (v & u64::from(u32::MAX)) as usize,
            cpu_permille: v >> 32,
        })
    }
    pub(crate) fn note_missed(&self, by: super::Attribution) {
        self.missed.fetch_add(1, Ordering::Relaxed);
        if by == super::Attribution::Platform {
            self.missed_platform.fetch_add(1, Ordering::Relaxed);
        }
    }
    /// Counts one job that reported a fault.
    pub(crate) fn note_fault(&self) {
        self.faults.fetch_add(1, Ordering::Relaxed);
    }
    /// Jobs that reported a fault so far, over the whole run (every incarnation).
    pub fn faults(&self) -> u64 {
        self.faults.load(Ordering::Relaxed)
    }
    /// Counts one job that used `cpu_ns` of CPU time against a budget of `budget_ns`.
    pub(crate) fn note_cpu(&self, cpu_ns: u64, budget_ns: u64) {
        let bucket = cpu_bucket(cpu_ns, budget_ns);
        self.cpu_histogram[bucket].fetch_add(1, Ordering::Relaxed);
    }
    /// Of [`AppHealth::overruns`], those the platform caused.
    pub fn overruns_platform(&self) -> u64 {
        self.overruns_platform.load(Ordering::Relaxed)
    }
    /// Of [`AppHealth::missed`], those the platform caused.
    pub fn missed_platform(&self) -> u64 {
        self.missed_platform.load(Ordering::Relaxed)
    }
    /// Jobs so far by CPU time per budget (see [`CPU_BUCKETS`]).
    pub fn cpu_histogram(&self) -> [u64; CPU_BUCKETS] {
        std::array::from_fn(|i| self.cpu_histogram[i].load(Ordering::Relaxed))
    }
    /// 1 + the newest cycle started, 0 before the first.
    pub fn heartbeat(&self) -> u64 {
        self.heartbeat.load(Ordering::Relaxed)
    }
    pub fn overruns(&self) -> u64 {
        self.overruns.load(Ordering::Relaxed)
    }
    pub fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }
    /// Starts a new incarnation of the app (after a restart): the heartbeat restarts at 0,
    /// the deadline counters keep counting over the whole run.
    pub fn reset_heartbeat(&self) {
        self.heartbeat.store(0, Ordering::Relaxed);
    }
}

/// The [`AppHealth::cpu_histogram`] bucket of a job that used `cpu_ns` of a `budget_ns`
/// budget.
pub fn cpu_bucket(cpu_ns: u64, budget_ns: u64) -> usize {
    let steps =
        (u128::from(cpu_ns) * u128::from(CPU_BUCKETS_PER_BUDGET)) / u128::from(budget_ns.max(1));
    steps.min(CPU_BUCKETS as u128 - 1) as usize
}

/// The bucket under which `quantile` (0..=1) of the jobs counted in `h` fall (its upper
/// edge, in budgets, is `(bucket + 1) / CPU_BUCKETS_PER_BUDGET`); `None` for no jobs.
pub fn cpu_quantile_bucket(h: &[u64; CPU_BUCKETS], quantile: f64) -> Option<usize> {
    let total: u64 = h.iter().sum();
    if total == 0 {
        return None;
    }
    let want = ((total as f64) * quantile.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
    let mut seen = 0u64;
    for (i, n) in h.iter().enumerate() {
        seen += n;
        if seen >= want {
            return Some(i);
        }
    }
    Some(CPU_BUCKETS - 1)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn cpu_buckets_and_quantiles() {
        assert_eq!(cpu_bucket(0, 100), 0);
        assert_eq!(cpu_bucket(50, 100), 16);
        assert_eq!(cpu_bucket(100, 100), 32);
        assert_eq!(cpu_bucket(u64::MAX, 1), CPU_BUCKETS - 1);
        assert_eq!(
            cpu_bucket(5, 0),
            CPU_BUCKETS - 1,
            "a zero budget does not divide"
        );
        let mut h = [0u64; CPU_BUCKETS];
        assert_eq!(cpu_quantile_bucket(&h, 0.99), None);
        h[3] = 99;
        h[40] = 1;
        assert_eq!(cpu_quantile_bucket(&h, 0.99), Some(3));
        assert_eq!(cpu_quantile_bucket(&h, 1.0), Some(40));
    }

    #[test]
    fn t2_first_dispatcher_decides_and_t3_others_read_the_same() {
        let c = RunControl::new(0);
        assert_eq!(c.mode_for_cycle(0), 0);
        c.request_mode(2);
        assert_eq!(
            c.mode_for_cycle(0),
            0,
            "cycle 0 was decided before the request"
        );
        assert_eq!(c.mode_for_cycle(1), 2);
        assert_eq!(c.mode_for_cycle(1), 2);
        assert_eq!(c.mode_switches(), vec![(1, 2)]);
        assert_eq!(c.active_mode(), 2);
    }

    #[test]
    fn t4_a_lagging_dispatcher_gets_the_previous_cycles_mode() {
        let c = RunControl::new(1);
        assert_eq!(c.mode_for_cycle(0), 1);
        c.request_mode(3);
        assert_eq!(c.mode_for_cycle(1), 3);
        assert_eq!(c.mode_for_cycle(0), 1);
    }

    #[test]
    fn t1_stop_is_final_and_applies_at_the_next_boundary() {
        let c = RunControl::new(0);
        assert_eq!(c.mode_for_cycle(0), 0);
        c.request_stop();
        c.request_mode(1);
        assert_eq!(c.mode_for_cycle(1), STOP);
    }

    #[test]
    fn a_handover_is_decided_with_the_next_cycle_and_seen_by_a_lagging_dispatcher() {
        let c = RunControl::new(0);
        assert_eq!(c.decide(0).mode, 0);
        let h = c.request_handover(2, 7, u64::MAX).expect("request");
        assert_eq!((h.serial, h.app, h.owner), (1, 2, 7));
        assert!(c.handover_pending());
        assert_eq!(
            c.request_handover(1, 1, u64::MAX),
            Err(HandoverError::Busy),
            "one handover at a time"
        );
        let d1 = c.decide(1);
        assert!(d1.handover, "decided at the first undecided cycle");
        assert_eq!(
            c.decide(1),
            d1,
            "a second dispatcher reads the same decision"
        );
        assert!(!c.handover_pending());
        assert_eq!(c.handover_done(), Some((1, 1)));
        assert!(!c.decide(2).handover, "only at one cycle");
        assert!(
            c.decide(1).handover,
            "a dispatcher one cycle behind still learns it at its cycle 1"
        );
        assert_eq!(c.handover(), Some(h));
    }

    #[test]
    fn a_handover_waits_for_a_mode_in_its_mask_and_can_be_withdrawn() {
        let c = RunControl::new(0);
        assert_eq!(c.decide(0).mode, 0);
        c.request_handover(0, 1, 1 << 2).expect("request");
        assert!(!c.decide(1).handover, "mode 0 is not in the mask");
        assert!(!c.decide(2).handover);
        c.request_mode(2);
        let d = c.decide(3);
        assert_eq!(
            d,
            CycleDecision {
                mode: 2,
                handover: true
            },
            "switches with the mode"
        );
        c.request_handover(0, 2, 1 << 5).expect("second request");
        assert!(!c.decide(4).handover);
        assert!(c.cancel_handover(), "still pending: withdrawn");
        assert!(!c.cancel_handover(), "nothing left to withdraw");
        c.request_mode(5);
        assert!(
            !c.decide(5).handover,
            "a withdrawn handover never takes effect"
        );
        assert_eq!(c.handover_done(), Some((1, 3)));
    }

    #[test]
    fn a_stop_refuses_handovers_and_a_pending_mode_request_keeps_the_handover() {
        let c = RunControl::new(0);
        c.decide(0);
        c.request_handover(0, 1, u64::MAX).expect("request");
        c.request_mode(1); // must not clear the pending handover
        let d = c.decide(1);
        assert_eq!(
            d,
            CycleDecision {
                mode: 1,
                handover: true
            }
        );
        c.request_stop();
        assert_eq!(
            c.request_handover(0, 2, u64::MAX),
            Err(HandoverError::Stopping)
        );
    }

    #[test]
    fn dismissal_names_one_process() {
        let c = RunControl::new(0);
        assert!(!c.is_dismissed(1, 0));
        c.dismiss(1, 3);
        assert!(c.is_dismissed(1, 3));
        assert!(!c.is_dismissed(1, 2));
        assert!(!c.is_dismissed(0, 3));
    }

    #[test]
    fn concurrent_dispatchers_agree_on_every_cycle() {
        // Two "cores" walk 2000 cycles in step (a barrier per cycle, as real cores are held
        // together by the clock) while a third thread keeps requesting modes.
        let c = RunControl::new(0);
        let barrier = std::sync::Barrier::new(2);
        let seen: Vec<Vec<usize>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        (0..2000u64)
                            .map(|n| {
                                let m = c.mode_for_cycle(n);
                                barrier.wait();
                                m
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for k in 0..500 {
                c.request_mode(k % 3);
                std::thread::yield_now();
            }
            hs.into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        assert_eq!(seen[0].len(), 2000);
        assert_eq!(
            seen[0], seen[1],
            "both cores saw the same mode in every cycle"
        );
        assert!(seen[0].iter().any(|&m| m != 0), "some requests took effect");
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;

    #[test]
    fn loom_two_dispatchers_and_a_request_agree() {
        loom::model(|| {
            let c = crate::sync::Arc::new(RunControl::new(0));
            let a = {
                let c = c.clone();
                loom::thread::spawn(move || [c.mode_for_cycle(0), c.mode_for_cycle(1)])
            };
            let b = {
                let c = c.clone();
                loom::thread::spawn(move || [c.mode_for_cycle(0), c.mode_for_cycle(1)])
            };
            c.request_mode(1);
            let (x, y) = (a.join().unwrap(), b.join().unwrap());
            assert_eq!(x, y);
        });
    }

    #[test]
    fn loom_a_handover_takes_effect_at_the_same_cycle_for_every_dispatcher() {
        // Two dispatchers (say, the old version's and the new version's) decide cycles 0
        // and 1 while the supervisor requests a handover: both must see it at the same
        // cycle, exactly once.
        loom::model(|| {
            let c = crate::sync::Arc::new(RunControl::new(0));
            let walk = |c: crate::sync::Arc<RunControl>| {
                move || [c.decide(0).handover, c.decide(1).handover]
            };
            let a = loom::thread::spawn(walk(c.clone()));
            let b = loom::thread::spawn(walk(c.clone()));
            let requested = c.request_handover(0, 1, u64::MAX).is_ok();
            let (x, y) = (a.join().unwrap(), b.join().unwrap());
            assert!(requested);
            assert_eq!(x, y, "both dispatchers see the handover at the same cycle");
            assert!(x.iter().filter(|&&h| h).count() <= 1, "at most once");
        });
    }
}

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

use crate::sync::{AtomicU64, Ordering};

/// The pseudo-mode that ends the run.
pub const STOP: usize = 0xFE;
const NONE: u64 = 0xFF;

const MAX_RECORDED_SWITCHES: usize = 64;

fn pack(cycle: u64, mode: u64, prev: u64, pending: u64) -> u64 {
    (cycle << 24) | (pending << 16) | (prev << 8) | mode
}

fn unpack(word: u64) -> (u64, u64, u64, u64) {
    (
        word >> 24,
        word & 0xFF,
        (word >> 8) & 0xFF,
        (word >> 16) & 0xFF,
    )
}

/// Steers and observes a running deployment. Create it with the default mode, hand it to
/// `dispatch::run`, and use it from any thread.
///
/// It is plain atomics with a fixed `#[repr(C)]` layout and no pointers, so one instance may
/// live in memory shared by several processes (the lifecycle manager's control block): then
/// every process decides the same mode for every cycle.
#[derive(Debug)]
#[repr(C)]
pub struct RunControl {
    /// Packed (cycle: 40 bits, pending: 8, previous: 8, mode: 8). Cycle counts from 1 so
    /// that cycle 0's decision is still to be made at start.
    state: AtomicU64,
    cycle: AtomicU64,
    jobs: AtomicU64,
    overruns: AtomicU64,
    switches_len: AtomicU64,
    /// (cycle << 8 | mode) for each decided mode switch, first `switches_len` valid.
    switches: [AtomicU64; MAX_RECORDED_SWITCHES],
}

impl RunControl {
    pub fn new(default_mode: usize) -> Self {
        let m = (default_mode as u64) & 0xFF;
        RunControl {
            state: AtomicU64::new(pack(0, m, m, NONE)),
            cycle: AtomicU64::new(0),
            jobs: AtomicU64::new(0),
            overruns: AtomicU64::new(0),
            switches_len: AtomicU64::new(0),
            switches: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Asks every core to switch to `mode` at the next hyperperiod boundary that no
    /// dispatcher has decided yet. Never blocks or allocates.
    pub fn request_mode(&self, mode: usize) {
        self.set_pending((mode as u64) & 0xFF);
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
                pack(c, m, p, pending),
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
        let want = cycle + 1; // stored cycles are 1-based
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            let (c, m, p, pend) = unpack(cur);
            if c == want {
                return m as usize;
            }
            if c > want {
                // This dispatcher lags a whole cycle; the decision for its cycle is the
                // previous one. More lag than that cannot be answered: keep the previous.
                return p as usize;
            }
            let next = if pend == NONE { m } else { pend };
            // SYNC POINT: AcqRel pairs with the Acquire loads of the other dispatchers and
            // with `set_pending`: exactly one CAS decides each cycle.
            match self.state.compare_exchange_weak(
                cur,
                pack(want, next, m, NONE),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if next != m && next != STOP as u64 && cycle > 0 {
                        self.record_switch(cycle, next);
                    }
                    return next as usize;
                }
                Err(now) => cur = now,
            }
        }
    }

    fn record_switch(&self, cycle: u64, mode: u64) {
        // Only the single winner of a cycle's decision records, so slots are never shared.
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

/// One app process's health, as its dispatchers measure it: read by the lifecycle
/// manager's supervisor. Plain atomics with a fixed layout, so it may live in shared memory.
/// Every counter is a statistic that orders nothing, so all accesses are Relaxed.
#[derive(Debug)]
#[repr(C)]
pub struct AppHealth {
    /// 1 + the newest cycle any of the app's dispatchers started (0: none yet).
    heartbeat: AtomicU64,
    overruns: AtomicU64,
    /// Jobs that were skipped or ended after their LET deadline.
    missed: AtomicU64,
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
        }
    }
    /// Once per cycle per dispatcher: the heartbeat moves once per hyperperiod.
    pub(crate) fn beat(&self, cycle: u64) {
        self.heartbeat.fetch_max(cycle + 1, Ordering::Relaxed);
    }
    pub(crate) fn note_overrun(&self) {
        self.overruns.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn note_missed(&self) {
        self.missed.fetch_add(1, Ordering::Relaxed);
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

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
}

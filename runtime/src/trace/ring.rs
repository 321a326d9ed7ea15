//! The per-core single-producer single-consumer trace ring.
//!
//! Owns: a fixed ring of [`TraceRecord`] slots allocated once by [`channel`], the producer
//! side a dispatcher writes into ([`RingProducer::push`]) and the consumer side the drainer
//! reads from ([`RingConsumer::drain_into`]), plus the accounting of records lost to a full
//! ring. `push` must never block, allocate, lock or make a syscall: on a full ring it drops
//! the record and counts it. Nothing here may ever write a `Dropped` marker from the
//! producer side; the consumer turns the producer's counts into markers.
//!
//! # Protocol
//!
//! `head` is the sequence number of the next record the producer writes and `tail` the next
//! one the consumer reads; both only grow, and slot `seq & mask` holds record `seq`. Only
//! the producer stores `head`, only the consumer stores `tail`. The producer writes a slot,
//! then publishes it with a Release store of `head`; the consumer Acquire-loads `head`,
//! reads the slots below it, then gives them back with a Release store of `tail`, which the
//! producer Acquire-loads before it reuses a slot. Every ordering below names its partner
//! in a `// SYNC POINT:` comment.
//!
//! # Losses
//!
//! A push onto a full ring adds the record to the producer's pending loss run: count, time
//! of the first and last lost record, and the sequence number `at_seq` the run happened at
//! (every lost record belongs between record `at_seq - 1` and record `at_seq`). Pending
//! runs are handed to the consumer through a one-slot mailbox (`mb_*`, owned by the
//! producer while `mb_full` is false and by the consumer while it is true). The producer
//! never publishes a record while a run is still pending: it hands the run over first, or,
//! if the mailbox is still full, drops the record into the same run. So the report of
//! every run is in the mailbox before the record that follows it is visible, and the
//! consumer, which empties the mailbox after loading `head` and before reading slots,
//! places each report as a `Dropped` marker exactly where the loss happened: after the
//! record `at_seq - 1`, before the record `at_seq`. When the producer is dropped it leaves
//! its last pending run in `final_*` and sets `closed`, so losses at the very end are
//! reported too. A run that goes on after its report was handed over is reported by
//! further markers at the same place; readers add them up.
//!
//! Why not let the producer write `Dropped` records itself: the loss happens precisely
//! when there is no slot to write one into.

use std::cell::Cell;
use std::fmt;

use crossbeam::utils::CachePadded;

use super::record::{EventKind, TraceRecord};
use crate::sync::{Arc, AtomicBool, AtomicU64, Ordering, UnsafeCell};
use crate::time::MonoNs;

/// Largest ring capacity [`channel`] accepts (48 MiB of records per core).
pub const MAX_RING_CAPACITY: usize = 1 << 20;

/// A ring capacity that is not a power of two in `1..=MAX_RING_CAPACITY`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingCapacityError {
    pub core: u8,
    pub capacity_records: usize,
}

impl fmt::Display for RingCapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "trace ring for core {}: capacity {} records is not allowed; use a power of two from 1 to {}",
            self.core, self.capacity_records, MAX_RING_CAPACITY
        )
    }
}

impl std::error::Error for RingCapacityError {}

/// One run of records lost to a full ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DropReport {
    /// Records lost.
    pub count: u64,
    /// `time_ns` of the first lost record.
    pub first_lost_ns: u64,
    /// `time_ns` of the last lost record.
    pub last_lost_ns: u64,
    /// Ring sequence number the run started at: the lost records belong just before the
    /// record with this sequence number.
    pub at_seq: u64,
}

impl DropReport {
    fn merge(self, later: DropReport) -> DropReport {
        if self.count == 0 {
            return later;
        }
        DropReport {
            count: self.count.saturating_add(later.count),
            first_lost_ns: self.first_lost_ns,
            last_lost_ns: later.last_lost_ns,
            at_seq: self.at_seq,
        }
    }

    /// The `Dropped` marker for this report on `core`'s ring.
    pub fn marker(&self, core: u8) -> TraceRecord {
        TraceRecord::dropped(
            core,
            self.at_seq,
            self.count,
            MonoNs(self.first_lost_ns),
            self.last_lost_ns,
        )
    }
}

/// The state both ends share. Each field says which side writes it.
///
/// Cache lines: `head` and `tail` each have a line of their own ([`CachePadded`]), because
/// two cores write them: the producer (a dispatcher) `head` at every push, several times per
/// job, and the consumer (the drainer) `tail` at every drain. Adjacent, each store would
/// take the line from the other side, and the producer would miss on it at its next push.
/// The fields after them are left unpadded and out of both lines (`repr(C)` keeps this
/// order): `core`, `mask` and `slots` are never written after [`channel`], so both sides
/// keep the line shared; the mailbox and `final_*` are written only on a loss or at close.
#[repr(C)]
struct Shared {
    /// Written by the producer only: next sequence number to write.
    head: CachePadded<AtomicU64>,
    /// Written by the consumer only: next sequence number to read.
    tail: CachePadded<AtomicU64>,
    core: u8,
    mask: u64,
    slots: Box<[UnsafeCell<TraceRecord>]>,
    /// Mailbox ownership: the producer writes `mb_*` only while false, the consumer reads
    /// them only while true.
    mb_full: AtomicBool,
    mb_count: AtomicU64,
    mb_first_lost_ns: AtomicU64,
    mb_last_lost_ns: AtomicU64,
    mb_at_seq: AtomicU64,
    /// Set once by the producer's `Drop`, after `final_*` are written.
    closed: AtomicBool,
    final_count: AtomicU64,
    final_first_lost_ns: AtomicU64,
    final_last_lost_ns: AtomicU64,
    final_at_seq: AtomicU64,
}

// `head` and `tail` on lines of their own, and nothing else on either.
const _: () = {
    use std::mem::offset_of;
    const LINE: usize = std::mem::align_of::<CachePadded<u8>>();
    assert!(std::mem::align_of::<Shared>() == LINE);
    assert!(offset_of!(Shared, tail) >= offset_of!(Shared, head) + LINE);
    assert!(offset_of!(Shared, core) >= offset_of!(Shared, tail) + LINE);
};

// SAFETY: `Shared` is `!Sync` only because of the slot cells. Access to a slot is split by
// the head/tail protocol in the module docs: the single producer (enforced because
// `RingProducer` is neither `Clone` nor `Sync`) writes only slots in `[head, tail + cap)`,
// which the consumer does not read, and the single consumer (`RingConsumer` is not `Clone`
// and reads through `&mut self`) reads only slots in `[tail, head)`, which the producer
// does not write. The Release/Acquire pairs on `head` and `tail` order each hand-over.
unsafe impl Sync for Shared {}
// SAFETY: every field is owned data (`TraceRecord` is `Copy` plain data, atomics are
// `Send`); moving `Shared` between threads moves no thread-bound state.
unsafe impl Send for Shared {}

/// Creates a ring of `capacity_records` slots for `core` and returns its two ends. This is
/// the only allocation the ring ever makes.
pub fn channel(
    capacity_records: usize,
    core: u8,
) -> Result<(RingProducer, RingConsumer), RingCapacityError> {
    if !capacity_records.is_power_of_two() || capacity_records > MAX_RING_CAPACITY {
        return Err(RingCapacityError {
            core,
            capacity_records,
        });
    }
    let slots: Box<[UnsafeCell<TraceRecord>]> = (0..capacity_records)
        .map(|_| UnsafeCell::new(TraceRecord::default()))
        .collect();
    let shared = Arc::new(Shared {
        core,
        mask: capacity_records as u64 - 1,
        slots,
        head: CachePadded::new(AtomicU64::new(0)),
        tail: CachePadded::new(AtomicU64::new(0)),
        mb_full: AtomicBool::new(false),
        mb_count: AtomicU64::new(0),
        mb_first_lost_ns: AtomicU64::new(0),
        mb_last_lost_ns: AtomicU64::new(0),
        mb_at_seq: AtomicU64::new(0),
        closed: AtomicBool::new(false),
        final_count: AtomicU64::new(0),
        final_first_lost_ns: AtomicU64::new(0),
        final_last_lost_ns: AtomicU64::new(0),
        final_at_seq: AtomicU64::new(0),
    });
    let producer = RingProducer {
        shared: Arc::clone(&shared),
        head: Cell::new(0),
        cached_tail: Cell::new(0),
        pending: Cell::new(DropReport::default()),
        dropped_total: Cell::new(0),
    };
    let consumer = RingConsumer {
        shared,
        tail: 0,
        held_mailbox: None,
        held_final: None,
        final_taken: false,
        dropped_total: 0,
    };
    Ok((producer, consumer))
}

impl Shared {
    fn capacity(&self) -> u64 {
        self.mask + 1
    }

    fn slot(&self, seq: u64) -> &UnsafeCell<TraceRecord> {
        // `mask` is `slots.len() - 1` with a power-of-two length, so the index is in range
        // and the conversion cannot truncate (it is below `slots.len()`, a usize).
        &self.slots[(seq & self.mask) as usize]
    }
}

/// The writing end of a ring: owned by one dispatcher thread.
///
/// `Send` so it can be moved to its dispatcher, but neither `Clone` nor `Sync`, so exactly
/// one thread can push: the single-producer half of the contract is kept by the compiler.
///
/// ```compile_fail,E0277
/// fn shared_between_threads<T: Sync>() {}
/// shared_between_threads::<takt::trace::RingProducer>();
/// ```
///
/// ```compile_fail,E0599
/// let (p, _c) = takt::trace::ring::channel(8, 0).unwrap();
/// let second_producer = p.clone();
/// ```
pub struct RingProducer {
    shared: Arc<Shared>,
    /// Local copy of `shared.head`; only this side writes it, so no load is needed.
    head: Cell<u64>,
    /// Last `shared.tail` seen; reloaded only when the ring looks full.
    cached_tail: Cell<u64>,
    /// Losses not yet handed to the consumer.
    pending: Cell<DropReport>,
    dropped_total: Cell<u64>,
}

impl RingProducer {
    /// Appends `rec`. Returns `false` when the ring was full: the record is then dropped and
    /// counted, never waited for. Never blocks, allocates or locks.
    ///
    /// While an earlier loss is still waiting to be handed over (the consumer has not
    /// emptied the one-slot mailbox yet), `rec` is dropped too and joins that loss: a
    /// record must never be published after a loss the consumer cannot yet see, or its
    /// marker would land in the wrong place. This lasts only until the consumer takes the
    /// mailbox, which every drain does as soon as it has placed the report it holds.
    pub fn push(&self, rec: TraceRecord) -> bool {
        let shared = &*self.shared;
        let head = self.head.get();
        if !self.try_hand_over_losses() {
            self.count_loss(head, rec.time_ns);
            return false;
        }
        if head.wrapping_sub(self.cached_tail.get()) >= shared.capacity() {
            // SYNC POINT: Acquire pairs with the consumer's Release store of `tail` in
            // `RingConsumer::drain_into`/`pop`: the consumer's reads of the slots below
            // `tail` happen before our overwrite of them.
            let tail = shared.tail.load(Ordering::Acquire);
            self.cached_tail.set(tail);
            if head.wrapping_sub(tail) >= shared.capacity() {
                self.count_loss(head, rec.time_ns);
                // Hand the loss over at once if the mailbox is free, so the drainer can
                // report it even if this producer never pushes again.
                self.try_hand_over_losses();
                return false;
            }
        }
        shared.slot(head).with_mut(|slot| {
            // SAFETY: `head - tail < capacity`, so this slot holds no record the consumer
            // may still read (it gave it back with the `tail` store we acquired), and the
            // consumer will not read it before the `head` store below publishes it. Only
            // this producer writes slots, and the pointer is valid and aligned because it
            // comes from a live cell of the ring's slot array.
            unsafe { slot.write(rec) }
        });
        // SYNC POINT: Release pairs with the consumer's Acquire load of `head` in
        // `snapshot_head`: the slot write above, and the hand-over of every loss before
        // this record, happen before the consumer reads the slot.
        shared.head.store(head.wrapping_add(1), Ordering::Release);
        self.head.set(head.wrapping_add(1));
        true
    }

    /// Tries to hand pending losses to the consumer now, e.g. from an idle dispatcher so
    /// the drainer can report them without waiting for the next push. Returns `true` when
    /// nothing is left pending.
    pub fn flush_losses(&self) -> bool {
        self.try_hand_over_losses()
    }

    /// Records this producer has dropped since the ring was created.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total.get()
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.shared.slots.len()
    }

    /// The core this ring belongs to.
    pub fn core(&self) -> u8 {
        self.shared.core
    }

    fn count_loss(&self, at_seq: u64, time_ns: u64) {
        let lost = DropReport {
            count: 1,
            first_lost_ns: time_ns,
            last_lost_ns: time_ns,
            at_seq,
        };
        self.pending.set(self.pending.get().merge(lost));
        self.dropped_total
            .set(self.dropped_total.get().saturating_add(1));
    }

    /// Moves pending losses into the mailbox if it is free. Returns `true` when nothing is
    /// left pending.
    fn try_hand_over_losses(&self) -> bool {
        let pending = self.pending.get();
        if pending.count == 0 {
            return true;
        }
        let shared = &*self.shared;
        // SYNC POINT: Acquire pairs with the consumer's Release store of `mb_full = false`
        // in `take_mailbox`: its reads of `mb_*` happen before our rewrite of them.
        if shared.mb_full.load(Ordering::Acquire) {
            return false;
        }
        // Relaxed: the mailbox belongs to us until the Release store of `mb_full` below
        // publishes these writes.
        shared.mb_count.store(pending.count, Ordering::Relaxed);
        shared
            .mb_first_lost_ns
            .store(pending.first_lost_ns, Ordering::Relaxed);
        shared
            .mb_last_lost_ns
            .store(pending.last_lost_ns, Ordering::Relaxed);
        shared.mb_at_seq.store(pending.at_seq, Ordering::Relaxed);
        // SYNC POINT: Release pairs with the consumer's Acquire load of `mb_full` in
        // `take_mailbox`: the four stores above happen before its reads.
        shared.mb_full.store(true, Ordering::Release);
        self.pending.set(DropReport::default());
        true
    }
}

impl Drop for RingProducer {
    fn drop(&mut self) {
        self.try_hand_over_losses();
        let pending = self.pending.get();
        let shared = &*self.shared;
        // Relaxed: nobody reads `final_*` before the Release store of `closed` below.
        shared.final_count.store(pending.count, Ordering::Relaxed);
        shared
            .final_first_lost_ns
            .store(pending.first_lost_ns, Ordering::Relaxed);
        shared
            .final_last_lost_ns
            .store(pending.last_lost_ns, Ordering::Relaxed);
        shared.final_at_seq.store(pending.at_seq, Ordering::Relaxed);
        // SYNC POINT: Release pairs with the consumer's Acquire load of `closed` in
        // `drain_into`: every push and the `final_*` stores happen before the consumer's
        // last drain.
        shared.closed.store(true, Ordering::Release);
    }
}

impl fmt::Debug for RingProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingProducer")
            .field("core", &self.shared.core)
            .field("capacity", &self.shared.capacity())
            .field("head", &self.head.get())
            .field("dropped_total", &self.dropped_total.get())
            .finish()
    }
}

/// What one [`RingConsumer::drain_into`] call appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DrainCount {
    /// Records taken from the ring.
    pub records: usize,
    /// `Dropped` markers inserted.
    pub markers: usize,
    /// Records lost, summed over those markers.
    pub dropped: u64,
}

/// The reading end of a ring: owned by the drainer.
///
/// `Send` so it can be moved to the drainer thread, not `Clone`, and every read takes
/// `&mut self`, so there is exactly one consumer.
pub struct RingConsumer {
    shared: Arc<Shared>,
    /// Local copy of `shared.tail`; only this side writes it.
    tail: u64,
    /// A report taken from the mailbox whose place (`at_seq`) is not reached yet.
    held_mailbox: Option<DropReport>,
    /// The producer's last report, read once after it closed, not yet placed.
    held_final: Option<DropReport>,
    final_taken: bool,
    dropped_total: u64,
}

impl RingConsumer {
    /// Takes the next entry of the ring's stream: the oldest record, or a `Dropped` marker
    /// when a loss report's place has been reached. Same stream as
    /// [`RingConsumer::drain_into`], one entry at a time.
    pub fn pop(&mut self) -> Option<TraceRecord> {
        let head = self.snapshot_head();
        let next = self.next_entry(head);
        if next.is_some_and(|r| r.kind != EventKind::Dropped as u8) {
            // SYNC POINT: Release pairs with the producer's Acquire load of `tail` in
            // `push`: our read of the slot happens before the producer overwrites it.
            self.shared.tail.store(self.tail, Ordering::Release);
        }
        next
    }

    /// Appends every record the producer had published when the call began to `out`, in
    /// push order, with a `Dropped` marker exactly where each loss happened (see the
    /// module docs). Allocates only if `out` lacks room.
    pub fn drain_into(&mut self, out: &mut Vec<TraceRecord>) -> DrainCount {
        let head = self.snapshot_head();
        let mut count = DrainCount::default();
        // Bounded: each entry either advances `tail` towards the fixed `head` or empties
        // one of the two held reports, and new reports are only taken while `tail` moves.
        while let Some(rec) = self.next_entry(head) {
            if rec.kind == EventKind::Dropped as u8 {
                count.markers += 1;
                count.dropped = count.dropped.saturating_add(rec.a);
            } else {
                count.records += 1;
            }
            out.push(rec);
        }
        if count.records > 0 {
            // SYNC POINT: Release pairs with the producer's Acquire load of `tail` in
            // `push`: our slot reads happen before the producer reuses the slots.
            self.shared.tail.store(self.tail, Ordering::Release);
        }
        count
    }

    /// Whether the producer has been dropped and every record and loss it left has been
    /// drained.
    pub fn is_finished(&self) -> bool {
        // SYNC POINT: Acquire pairs with the Release store of `closed` in the producer's
        // `Drop`: after it, `head` and `mb_full` hold their last values.
        self.shared.closed.load(Ordering::Acquire)
            && self.final_taken
            && self.held_mailbox.is_none()
            && self.held_final.is_none()
            // SYNC POINT: Acquire pairs with the producer's Release store of `head`.
            && self.shared.head.load(Ordering::Acquire) == self.tail
            // SYNC POINT: Acquire pairs with the producer's Release store of `mb_full`.
            && !self.shared.mb_full.load(Ordering::Acquire)
    }

    /// Records lost on this ring that this consumer has placed markers for so far.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.shared.slots.len()
    }

    /// The core this ring belongs to.
    pub fn core(&self) -> u8 {
        self.shared.core
    }

    /// Loads `head` for one pop or drain, after taking the producer's final report if it
    /// has closed.
    fn snapshot_head(&mut self) -> u64 {
        // SYNC POINT: Acquire pairs with the Release store of `closed` in the producer's
        // `Drop`: once we see it, the `head` below and `final_*` are final.
        let closed = self.shared.closed.load(Ordering::Acquire);
        if closed && !self.final_taken {
            self.final_taken = true;
            let shared = &*self.shared;
            // Relaxed: ordered after the producer's stores by the `closed` Acquire above.
            let last = DropReport {
                count: shared.final_count.load(Ordering::Relaxed),
                first_lost_ns: shared.final_first_lost_ns.load(Ordering::Relaxed),
                last_lost_ns: shared.final_last_lost_ns.load(Ordering::Relaxed),
                at_seq: shared.final_at_seq.load(Ordering::Relaxed),
            };
            if last.count > 0 {
                self.held_final = Some(last);
            }
        }
        // SYNC POINT: Acquire pairs with the producer's Release store of `head` in `push`:
        // its slot writes below `head`, and its hand-over of every report placed before
        // them, happen before our reads.
        self.shared.head.load(Ordering::Acquire)
    }

    /// The next stream entry below `head`: a held report whose place is reached, else the
    /// record at `tail`. Does not store `tail`; the callers do, once per call.
    fn next_entry(&mut self, head: u64) -> Option<TraceRecord> {
        if self.held_mailbox.is_none() {
            // Taken after `head` was loaded, so every report that belongs before a record
            // below `head` is in the mailbox by now (the producer hands a report over
            // before it publishes the record that follows the loss).
            self.held_mailbox = self.take_mailbox();
        }
        // A report is placed exactly when every record pushed before the loss has been
        // read: `at_seq <= tail`. The mailbox report is older than the final one.
        let tail = self.tail;
        for held in [&mut self.held_mailbox, &mut self.held_final] {
            if let Some(report) = held.take_if(|r| r.at_seq <= tail) {
                self.dropped_total = self.dropped_total.saturating_add(report.count);
                return Some(report.marker(self.shared.core));
            }
        }
        if self.tail == head {
            return None;
        }
        let rec = self.read_slot(self.tail);
        self.tail = self.tail.wrapping_add(1);
        Some(rec)
    }

    fn read_slot(&self, seq: u64) -> TraceRecord {
        self.shared.slot(seq).with(|slot| {
            // SAFETY: `tail <= seq < head` (callers only read published, not yet returned
            // sequence numbers), so the producer finished writing this slot before its
            // Release store of `head`, which we acquired, and will not write it again
            // until our Release store of a `tail` above `seq`. `TraceRecord` is `Copy`, so
            // reading it out leaves the slot valid.
            unsafe { slot.read() }
        })
    }

    fn take_mailbox(&mut self) -> Option<DropReport> {
        let shared = &*self.shared;
        // SYNC POINT: Acquire pairs with the producer's Release store of `mb_full = true`
        // in `try_hand_over_losses`: its `mb_*` stores happen before our loads.
        if !shared.mb_full.load(Ordering::Acquire) {
            return None;
        }
        // Relaxed: ordered by the Acquire above; the producer does not touch the mailbox
        // again until our Release store below.
        let report = DropReport {
            count: shared.mb_count.load(Ordering::Relaxed),
            first_lost_ns: shared.mb_first_lost_ns.load(Ordering::Relaxed),
            last_lost_ns: shared.mb_last_lost_ns.load(Ordering::Relaxed),
            at_seq: shared.mb_at_seq.load(Ordering::Relaxed),
        };
        // SYNC POINT: Release pairs with the producer's Acquire load of `mb_full` in
        // `try_hand_over_losses`: our loads above happen before it rewrites the mailbox.
        shared.mb_full.store(false, Ordering::Release);
        Some(report)
    }
}

impl fmt::Debug for RingConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingConsumer")
            .field("core", &self.shared.core)
            .field("capacity", &self.shared.capacity())
            .field("tail", &self.tail)
            .field("dropped_total", &self.dropped_total)
            .finish()
    }
}

/// Checks the stream drained from one ring whose producer pushed `pushed` records with
/// `job` = 0, 1, 2, ... (see `test_record`): no record is torn (`a` and `b` derive from
/// `job`), jobs arrive in order and at most once, every gap in the jobs is explained
/// exactly by the `Dropped` markers right before it, every marker sits at the ring
/// sequence number it names, and received + lost = pushed.
#[cfg(test)]
fn check_stream(stream: &[TraceRecord], pushed: u64) {
    let mut next_job = 0u64;
    let mut received = 0u64;
    let mut lost_total = 0u64;
    let mut lost_here = 0u64;
    for rec in stream {
        if rec.kind == EventKind::Dropped as u8 {
            assert!(rec.a > 0, "empty drop marker {rec:?}");
            assert_eq!(
                rec.job, received,
                "marker names sequence {} but sits after {received} records",
                rec.job
            );
            assert!(rec.time_ns <= rec.b, "first loss after last loss: {rec:?}");
            lost_total += rec.a;
            lost_here += rec.a;
            continue;
        }
        assert_eq!(rec.a, rec.job.wrapping_mul(3), "torn record {rec:?}");
        assert_eq!(rec.b, !rec.job, "torn record {rec:?}");
        assert!(
            rec.job >= next_job,
            "job {} after job {}: out of order or duplicated",
            rec.job,
            next_job
        );
        assert_eq!(
            rec.job - next_job,
            lost_here,
            "jobs {next_job}..{} missing but the markers before job {} report {lost_here} lost",
            rec.job,
            rec.job
        );
        lost_here = 0;
        next_job = rec.job + 1;
        received += 1;
    }
    assert_eq!(
        pushed - next_job,
        lost_here,
        "trailing jobs {next_job}..{pushed} not reported lost"
    );
    assert_eq!(
        received + lost_total,
        pushed,
        "received {received} + lost {lost_total} != pushed {pushed}"
    );
}

/// A record whose `a` and `b` are functions of its job, so a torn read shows.
#[cfg(test)]
fn test_record(job: u64) -> TraceRecord {
    let mut rec = TraceRecord::start(
        0,
        1,
        job,
        crate::time::LogicalNs(job * 10),
        crate::time::MonoNs(job * 10 + 1),
    );
    rec.a = job.wrapping_mul(3);
    rec.b = !job;
    rec
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn capacity_must_be_a_power_of_two_within_the_limit() {
        for bad in [0, 3, 6, 1000, MAX_RING_CAPACITY * 2] {
            let err = channel(bad, 4).unwrap_err();
            assert_eq!(err.capacity_records, bad);
            assert!(err.to_string().contains("core 4"), "{err}");
            assert!(err.to_string().contains("power of two"), "{err}");
        }
        for good in [1, 2, 64, MAX_RING_CAPACITY] {
            let (p, c) = channel(good, 0).unwrap();
            assert_eq!((p.capacity(), c.capacity()), (good, good));
        }
    }

    #[test]
    fn pop_gives_records_in_order_and_the_marker_in_its_place() {
        let (p, mut c) = channel(4, 2).unwrap();
        for job in 0..4 {
            assert!(p.push(test_record(job)));
        }
        assert!(!p.push(test_record(4)));
        assert!(!p.push(test_record(5)));
        assert_eq!(p.dropped_total(), 2);
        for job in 0..4 {
            assert_eq!(c.pop(), Some(test_record(job)));
        }
        // Run A (record 4) went to the mailbox at once; record 5 found the mailbox still
        // full and waits as run B, reported as a second marker at the same place.
        let marker = c.pop().unwrap();
        assert_eq!(
            marker,
            DropReport {
                count: 1,
                first_lost_ns: test_record(4).time_ns,
                last_lost_ns: test_record(4).time_ns,
                at_seq: 4
            }
            .marker(2)
        );
        assert_eq!(c.pop(), None);
        assert!(p.push(test_record(6))); // hands B over before publishing
        let marker = c.pop().unwrap();
        assert_eq!(
            (marker.job, marker.a, marker.time_ns),
            (4, 1, test_record(5).time_ns)
        );
        assert_eq!(c.pop(), Some(test_record(6)));
        assert_eq!(c.pop(), None);
        assert_eq!(c.dropped_total(), 2);
    }

    #[test]
    fn drain_places_the_marker_between_the_records_around_the_loss() {
        let (p, mut c) = channel(2, 7).unwrap();
        assert!(p.push(test_record(0)));
        assert!(p.push(test_record(1)));
        assert!(!p.push(test_record(2)));
        assert!(!p.push(test_record(3)));
        assert!(!p.push(test_record(4)));
        assert!(!p.flush_losses(), "the mailbox still holds the first run");
        let mut out = Vec::new();
        let n = c.drain_into(&mut out);
        assert_eq!(
            n,
            DrainCount {
                records: 2,
                markers: 1,
                dropped: 1
            }
        );
        assert_eq!(&out[..2], &[test_record(0), test_record(1)]);
        assert_eq!(out[2].kind(), Ok(EventKind::Dropped));
        assert_eq!((out[2].core, out[2].job, out[2].a), (7, 2, 1));
        assert_eq!(out[2].time_ns, test_record(2).time_ns);
        assert_eq!(out[2].b, test_record(2).time_ns);
        // The drain emptied the mailbox, so the rest of the run goes over now.
        assert!(p.flush_losses());
        let n = c.drain_into(&mut out);
        assert_eq!((n.records, n.markers, n.dropped), (0, 1, 2));
        assert_eq!((out[3].job, out[3].a), (2, 2));
        assert_eq!(
            (out[3].time_ns, out[3].b),
            (test_record(3).time_ns, test_record(4).time_ns)
        );
        assert!(p.push(test_record(5)));
        c.drain_into(&mut out);
        assert_eq!(out[4], test_record(5));
        check_stream(&out, 6);
    }

    #[test]
    fn a_loss_behind_a_full_mailbox_swallows_records_until_the_consumer_drains() {
        let (p, mut c) = channel(2, 0).unwrap();
        assert!(p.push(test_record(0)));
        assert!(p.push(test_record(1)));
        assert!(!p.push(test_record(2))); // ring full: run A (seq 2) into the mailbox
        let mut out = vec![c.pop().unwrap()]; // holds A until seq 2, reads record 0
        assert!(p.push(test_record(3))); // seq 2
        assert!(!p.push(test_record(4))); // ring full: run B (seq 3) into the mailbox
        assert!(!p.push(test_record(5))); // ring full, mailbox full: run C (seq 3) pending
        out.push(c.pop().unwrap()); // record 1; the consumer still holds A, B stays put
                                    // A slot is free now, but C cannot be handed over while B sits in the mailbox, so
                                    // publishing record 6 would put it ahead of C's marker: it joins C instead.
        assert!(!p.push(test_record(6)));
        assert_eq!(p.dropped_total(), 4);
        c.drain_into(&mut out); // A, record 3, B; empties the mailbox
        assert!(p.push(test_record(7))); // hands C over first, then publishes
        c.drain_into(&mut out); // C, record 7
        let markers: Vec<(u64, u64)> = out
            .iter()
            .filter(|r| r.kind == EventKind::Dropped as u8)
            .map(|r| (r.job, r.a))
            .collect();
        assert_eq!(markers, vec![(2, 1), (3, 1), (3, 2)]);
        check_stream(&out, 8);
        assert_eq!(c.dropped_total(), 4);
    }

    #[test]
    fn losses_left_when_the_producer_goes_away_are_reported() {
        let (p, mut c) = channel(1, 0).unwrap();
        assert!(p.push(test_record(0)));
        assert!(!p.push(test_record(1))); // run A into the mailbox
        assert!(!p.push(test_record(2))); // mailbox full: run B stays pending
        drop(p); // B goes to `final_*`
        let mut out = Vec::new();
        let n = c.drain_into(&mut out);
        assert_eq!((n.records, n.markers, n.dropped), (1, 2, 2));
        check_stream(&out, 3);
        assert!(c.is_finished());
        assert_eq!(c.dropped_total(), 2);
    }

    #[test]
    fn threads_pushing_many_records_add_up() {
        const PUSHED: u64 = 200_000;
        let (p, mut c) = channel(64, 1).unwrap();
        let producer = std::thread::spawn(move || {
            let mut accepted = 0u64;
            for job in 0..PUSHED {
                if p.push(test_record(job)) {
                    accepted += 1;
                }
                if job % 1024 == 0 {
                    std::thread::yield_now();
                }
            }
            (accepted, p.dropped_total())
        });
        let mut stream = Vec::with_capacity(PUSHED as usize);
        // Ends: once the producer has pushed PUSHED records it is dropped, and the next
        // drain takes everything it left. Each pass drains at least one record or sees
        // the producer still running, so the loop cannot spin forever.
        while !c.is_finished() {
            c.drain_into(&mut stream);
            std::thread::yield_now();
        }
        let (accepted, dropped) = producer.join().unwrap();
        assert_eq!(accepted + dropped, PUSHED);
        check_stream(&stream, PUSHED);
        let received = stream
            .iter()
            .filter(|r| r.kind != EventKind::Dropped as u8)
            .count() as u64;
        assert_eq!(received, accepted);
        assert_eq!(c.dropped_total(), dropped);
    }

    #[test]
    fn a_ring_never_full_loses_nothing() {
        const PUSHED: u64 = 10_000;
        let (p, mut c) = channel(16, 0).unwrap();
        let mut stream = Vec::new();
        for job in 0..PUSHED {
            assert!(p.push(test_record(job)));
            if job % 8 == 7 {
                c.drain_into(&mut stream);
            }
        }
        drop(p);
        c.drain_into(&mut stream);
        assert_eq!(stream.len() as u64, PUSHED);
        check_stream(&stream, PUSHED);
    }

    #[test]
    fn ends_are_send() {
        fn send<T: Send>() {}
        send::<RingProducer>();
        send::<RingConsumer>();
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;

    /// The producer pushes `pushed` records into a ring of `capacity` slots while the
    /// consumer drains `drains` times concurrently, then once more after the producer is
    /// gone; `check_stream` then demands exact accounting and placement.
    fn drain_model(capacity: usize, pushed: u64, drains: usize) {
        loom::model(move || {
            let (p, mut c) = channel(capacity, 0).unwrap();
            let producer = loom::thread::spawn(move || {
                for job in 0..pushed {
                    p.push(test_record(job));
                }
            });
            let mut stream = Vec::new();
            for _ in 0..drains {
                c.drain_into(&mut stream);
            }
            producer.join().unwrap();
            c.drain_into(&mut stream);
            assert!(c.is_finished());
            check_stream(&stream, pushed);
        });
    }

    #[test]
    fn loom_push_past_capacity_while_draining() {
        drain_model(2, 5, 3);
    }

    /// Three drains against four pushes into one slot reach the case where a loss run
    /// waits behind a full mailbox while a slot is free: without the producer's rule of
    /// dropping into the pending run, a marker lands after the record that follows it.
    #[test]
    fn loom_single_slot_ring_loses_and_reports() {
        drain_model(1, 4, 3);
    }

    #[test]
    fn loom_pop_one_at_a_time_while_pushing() {
        loom::model(|| {
            let (p, mut c) = channel(2, 0).unwrap();
            let producer = loom::thread::spawn(move || {
                for job in 0..4 {
                    p.push(test_record(job));
                }
            });
            let mut stream = Vec::new();
            for _ in 0..3 {
                if let Some(rec) = c.pop() {
                    stream.push(rec);
                }
            }
            producer.join().unwrap();
            // Bounded: after the producer is gone at most 2 records and 2 markers remain.
            for _ in 0..4 {
                if let Some(rec) = c.pop() {
                    stream.push(rec);
                }
            }
            assert_eq!(c.pop(), None);
            assert!(c.is_finished());
            check_stream(&stream, 4);
        });
    }
}

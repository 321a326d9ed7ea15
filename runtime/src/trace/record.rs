//! The fixed-size trace record and its typed view.
//!
//! Owns: the memory and wire layout of one trace event ([`TraceRecord`], 48 bytes,
//! `#[repr(C)]`, `Copy`), the event kinds ([`EventKind`]) and the typed view of each kind's
//! payload ([`TraceEvent`]). Constructing a record never allocates and never fails, so the
//! dispatcher can build one on the hot path. It must never do I/O or read a clock: callers
//! pass every time in.
//!
//! # Field use per kind
//!
//! Every record has `kind`, `core` (the core whose ring carried it), `task` (the manifest's
//! task index, or [`NO_TASK`]), `job` (the task's job index; for `ModeSwitch` the
//! hyperperiod cycle; for `Dropped` the ring sequence number the loss started at),
//! `time_ns` (physical time on the deployment's clock) and `logical_ns` (logical time since
//! the epoch). The rest depends on the kind:
//!
//! | kind | `aux` | `a` | `b` |
//! |---|---|---|---|
//! | Release | - | planned window start (logical ns) | - |
//! | Start | - | - | - |
//! | End | - | execution ns | off-CPU ns (wall minus thread CPU time; 0 before format 3) |
//! | Publish | port id | sample sequence | visible at (logical ns) |
//! | Read | port id | sequence taken, 0 for none | - |
//! | Overrun | attribution | execution ns | budget ns |
//! | Skip | attribution | - | - |
//! | ModeSwitch | - | from mode | to mode |
//! | Lifecycle | - | code | value |
//! | Dropped | - | records lost | time of the last loss (ns) |
//! | Miss | attribution | ns past the LET deadline | the platform's share of the delay (ns) |
//! | Fault | the job's fault code (its first report's) | reports in the job | - |
//!
//! `attribution` is [`Attribution::code`](crate::dispatch::Attribution::code): 1 platform,
//! 2 takt/task, 0 not attributed (files before format 3, and any other value a hostile file
//! holds: readers treat it as unattributed, never fail on it).
//!
//! For `Dropped`, `time_ns` is the time of the first lost record. Only the drainer writes
//! `Dropped` markers; a producer that finds its ring full just counts (see `ring`).

use std::fmt;

use crate::time::{LogicalNs, MonoNs};

/// `task` value for records that belong to no task (mode switches, drop markers, lifecycle
/// events of the whole process).
pub const NO_TASK: u32 = u32::MAX;

/// Size of one record in memory and on the wire.
pub const RECORD_BYTES: usize = 48;

/// What a record says happened. The discriminant is the `kind` byte on the wire; 0 is
/// deliberately unused so an all-zero record is never mistaken for an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum EventKind {
    Release = 1,
    Start = 2,
    End = 3,
    Publish = 4,
    Read = 5,
    Overrun = 6,
    Skip = 7,
    ModeSwitch = 8,
    Lifecycle = 9,
    Dropped = 10,
    /// A job ended after its LET deadline (format 3 on).
    Miss = 11,
    /// A job reported one or more faults (`StepContext::fault`; format 4 on).
    Fault = 12,
}

impl EventKind {
    /// Every kind, in discriminant order.
    pub const ALL: [EventKind; 12] = [
        EventKind::Release,
        EventKind::Start,
        EventKind::End,
        EventKind::Publish,
        EventKind::Read,
        EventKind::Overrun,
        EventKind::Skip,
        EventKind::ModeSwitch,
        EventKind::Lifecycle,
        EventKind::Dropped,
        EventKind::Miss,
        EventKind::Fault,
    ];

    /// The kind's name as tools print it.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Release => "release",
            EventKind::Start => "start",
            EventKind::End => "end",
            EventKind::Publish => "publish",
            EventKind::Read => "read",
            EventKind::Overrun => "overrun",
            EventKind::Skip => "skip",
            EventKind::ModeSwitch => "mode_switch",
            EventKind::Lifecycle => "lifecycle",
            EventKind::Dropped => "dropped",
            EventKind::Miss => "miss",
            EventKind::Fault => "fault",
        }
    }
}

impl TryFrom<u8> for EventKind {
    type Error = UnknownEventKind;

    fn try_from(byte: u8) -> Result<Self, Self::Error> {
        EventKind::ALL
            .iter()
            .copied()
            .find(|k| *k as u8 == byte)
            .ok_or(UnknownEventKind { kind: byte })
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A record's `kind` byte names no [`EventKind`]: the record was written by a newer takt or
/// the bytes are corrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownEventKind {
    pub kind: u8,
}

impl fmt::Display for UnknownEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown trace event kind {}; known kinds are 1 (release) to 12 (fault)",
            self.kind
        )
    }
}

impl std::error::Error for UnknownEventKind {}

/// The kind-specific payload of a record, typed. The fields every record has (`core`,
/// `task`, `job`, `time_ns`, `logical_ns`) stay on [`TraceRecord`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TraceEvent {
    /// A job was released: `logical_ns` is the logical release, `time_ns` the actual one;
    /// the plan reserved the window `[window_start_ns, window_start_ns + budget_ns)`
    /// (logical, ns since the epoch).
    Release {
        window_start_ns: u64,
        budget_ns: u64,
    },
    /// The job started executing at `time_ns`.
    Start,
    /// The job finished at `time_ns` after `execution_ns` of execution, `off_cpu_ns` of
    /// which its thread was off the CPU (0 in files before format 3).
    End { execution_ns: u64, off_cpu_ns: u64 },
    /// The job published sample `seq` on `port`; it becomes visible at `visible_at_ns`.
    Publish {
        port: u16,
        seq: u64,
        visible_at_ns: u64,
    },
    /// The job read `port` and took sample `seq` (0: no sample was visible).
    Read { port: u16, seq: u64 },
    /// The job ran `execution_ns` against a budget of `budget_ns`; `attribution` as in the
    /// module docs (0: not attributed).
    Overrun {
        execution_ns: u64,
        budget_ns: u64,
        attribution: u16,
    },
    /// The release at `logical_ns` was skipped by the task's overrun policy; `attribution`
    /// is the overrun's.
    Skip { attribution: u16 },
    /// The deployment switched from mode `from_mode` to `to_mode` at the start of hyperperiod
    /// cycle `job`.
    ModeSwitch { from_mode: u64, to_mode: u64 },
    /// A supervisor event; the meaning of `code` and `value` is the supervisor's.
    Lifecycle { code: u64, value: u64 },
    /// `count` records were lost between `time_ns` (first loss) and `last_lost_ns`.
    Dropped { count: u64, last_lost_ns: u64 },
    /// The job ended `late_ns` after its LET deadline; `platform_ns` of its delay was the
    /// platform's (late wake-up, off-CPU time); `attribution` as in the module docs.
    Miss {
        late_ns: u64,
        platform_ns: u64,
        attribution: u16,
    },
    /// The job reported `reports` faults; `code` is the first report's (the app's own
    /// meaning, see `StepContext::fault`).
    Fault { code: u16, reports: u64 },
}

impl TraceEvent {
    /// The kind this payload belongs to.
    pub fn kind(&self) -> EventKind {
        match self {
            TraceEvent::Release { .. } => EventKind::Release,
            TraceEvent::Start => EventKind::Start,
            TraceEvent::End { .. } => EventKind::End,
            TraceEvent::Publish { .. } => EventKind::Publish,
            TraceEvent::Read { .. } => EventKind::Read,
            TraceEvent::Overrun { .. } => EventKind::Overrun,
            TraceEvent::Skip { .. } => EventKind::Skip,
            TraceEvent::ModeSwitch { .. } => EventKind::ModeSwitch,
            TraceEvent::Lifecycle { .. } => EventKind::Lifecycle,
            TraceEvent::Dropped { .. } => EventKind::Dropped,
            TraceEvent::Miss { .. } => EventKind::Miss,
            TraceEvent::Fault { .. } => EventKind::Fault,
        }
    }
}

/// One trace event: fixed size, `Copy`, no pointers, so it can be written into a ring slot
/// with a plain store and onto disk field by field.
///
/// The fields are public so tools can read them directly; [`TraceRecord::event`] gives the
/// typed view and refuses an unknown `kind`. See the module docs for what each field holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, bincode::Encode, bincode::Decode)]
#[repr(C)]
pub struct TraceRecord {
    /// [`EventKind`] discriminant.
    pub kind: u8,
    /// The core whose ring carried the record.
    pub core: u8,
    /// Port id for `Publish` and `Read`, otherwise 0. It fills what would be padding.
    pub aux: u16,
    /// Manifest task index, or [`NO_TASK`].
    pub task: u32,
    /// Physical time on the deployment's clock (`CLOCK_MONOTONIC` or the simulated clock).
    pub time_ns: u64,
    /// Logical time since the epoch (for job events: the job's logical release).
    pub logical_ns: u64,
    /// Job index, hyperperiod cycle (`ModeSwitch`) or ring sequence (`Dropped`).
    pub job: u64,
    /// First kind-specific value.
    pub a: u64,
    /// Second kind-specific value.
    pub b: u64,
}

// The layout is part of the ring's and the tools' contract: checked at compile time.
const _: () = assert!(std::mem::size_of::<TraceRecord>() == RECORD_BYTES);
const _: () = assert!(std::mem::align_of::<TraceRecord>() == 8);

impl TraceRecord {
    /// Builds a record from its common fields and a typed payload. [`TraceRecord::event`] is
    /// its inverse. The two instants have their own types, so the constructors below cannot
    /// hand them over swapped; the record stores both as plain `u64`.
    pub const fn new(
        core: u8,
        task: u32,
        job: u64,
        time: MonoNs,
        logical: LogicalNs,
        event: TraceEvent,
    ) -> Self {
        let (kind, aux, a, b) = match event {
            TraceEvent::Release {
                window_start_ns,
                budget_ns,
            } => (EventKind::Release, 0, window_start_ns, budget_ns),
            TraceEvent::Start => (EventKind::Start, 0, 0, 0),
            TraceEvent::End {
                execution_ns,
                off_cpu_ns,
            } => (EventKind::End, 0, execution_ns, off_cpu_ns),
            TraceEvent::Publish {
                port,
                seq,
                visible_at_ns,
            } => (EventKind::Publish, port, seq, visible_at_ns),
            TraceEvent::Read { port, seq } => (EventKind::Read, port, seq, 0),
            TraceEvent::Overrun {
                execution_ns,
                budget_ns,
                attribution,
            } => (EventKind::Overrun, attribution, execution_ns, budget_ns),
            TraceEvent::Skip { attribution } => (EventKind::Skip, attribution, 0, 0),
            TraceEvent::ModeSwitch { from_mode, to_mode } => {
                (EventKind::ModeSwitch, 0, from_mode, to_mode)
            }
            TraceEvent::Lifecycle { code, value } => (EventKind::Lifecycle, 0, code, value),
            TraceEvent::Dropped {
                count,
                last_lost_ns,
            } => (EventKind::Dropped, 0, count, last_lost_ns),
            TraceEvent::Miss {
                late_ns,
                platform_ns,
                attribution,
            } => (EventKind::Miss, attribution, late_ns, platform_ns),
            TraceEvent::Fault { code, reports } => (EventKind::Fault, code, reports, 0),
        };
        TraceRecord {
            kind: kind as u8,
            core,
            aux,
            task,
            time_ns: time.0,
            logical_ns: logical.0,
            job,
            a,
            b,
        }
    }

    /// A job release: logical release `logical_release`, actual release `actual`, and
    /// the planned window (start, logical ns since the epoch, and budget).
    #[allow(clippy::too_many_arguments)]
    pub const fn release(
        core: u8,
        task: u32,
        job: u64,
        logical_release: LogicalNs,
        actual: MonoNs,
        window_start_ns: u64,
        budget_ns: u64,
    ) -> Self {
        Self::new(
            core,
            task,
            job,
            actual,
            logical_release,
            TraceEvent::Release {
                window_start_ns,
                budget_ns,
            },
        )
    }

    /// The job began executing at `time`.
    pub const fn start(core: u8, task: u32, job: u64, logical: LogicalNs, time: MonoNs) -> Self {
        Self::new(core, task, job, time, logical, TraceEvent::Start)
    }

    /// The job finished at `time` after `execution_ns`, `off_cpu_ns` of it off the CPU.
    #[allow(clippy::too_many_arguments)]
    pub const fn end(
        core: u8,
        task: u32,
        job: u64,
        logical: LogicalNs,
        time: MonoNs,
        execution_ns: u64,
        off_cpu_ns: u64,
    ) -> Self {
        Self::new(
            core,
            task,
            job,
            time,
            logical,
            TraceEvent::End {
                execution_ns,
                off_cpu_ns,
            },
        )
    }

    /// The job published sample `seq` on `port`, visible from `visible_at_ns` on.
    #[allow(clippy::too_many_arguments)]
    pub const fn publish(
        core: u8,
        task: u32,
        job: u64,
        logical: LogicalNs,
        time: MonoNs,
        port: u16,
        seq: u64,
        visible_at_ns: u64,
    ) -> Self {
        Self::new(
            core,
            task,
            job,
            time,
            logical,
            TraceEvent::Publish {
                port,
                seq,
                visible_at_ns,
            },
        )
    }

    /// The job read `port` and took sample `seq` (0 when none was visible).
    pub const fn read(
        core: u8,
        task: u32,
        job: u64,
        logical: LogicalNs,
        time: MonoNs,
        port: u16,
        seq: u64,
    ) -> Self {
        Self::new(
            core,
            task,
            job,
            time,
            logical,
            TraceEvent::Read { port, seq },
        )
    }

    /// The job ran `execution_ns`, more than its `budget_ns`; `attribution` is an
    /// [`Attribution::code`](crate::dispatch::Attribution::code).
    #[allow(clippy::too_many_arguments)]
    pub const fn overrun(
        core: u8,
        task: u32,
        job: u64,
        logical: LogicalNs,
        time: MonoNs,
        execution_ns: u64,
        budget_ns: u64,
        attribution: u16,
    ) -> Self {
        Self::new(
            core,
            task,
            job,
            time,
            logical,
            TraceEvent::Overrun {
                execution_ns,
                budget_ns,
                attribution,
            },
        )
    }

    /// The release at `logical` was skipped after an overrun of class `attribution`.
    pub const fn skip(
        core: u8,
        task: u32,
        job: u64,
        logical: LogicalNs,
        time: MonoNs,
        attribution: u16,
    ) -> Self {
        Self::new(
            core,
            task,
            job,
            time,
            logical,
            TraceEvent::Skip { attribution },
        )
    }

    /// The job ended at `time`, `late_ns` after its LET deadline, `platform_ns` of its
    /// delay the platform's; `attribution` is an
    /// [`Attribution::code`](crate::dispatch::Attribution::code).
    #[allow(clippy::too_many_arguments)]
    pub const fn miss(
        core: u8,
        task: u32,
        job: u64,
        logical: LogicalNs,
        time: MonoNs,
        late_ns: u64,
        platform_ns: u64,
        attribution: u16,
    ) -> Self {
        Self::new(
            core,
            task,
            job,
            time,
            logical,
            TraceEvent::Miss {
                late_ns,
                platform_ns,
                attribution,
            },
        )
    }

    /// The job reported `reports` faults, the first with `code`; traced at its end.
    pub const fn fault(
        core: u8,
        task: u32,
        job: u64,
        logical: LogicalNs,
        time: MonoNs,
        code: u16,
        reports: u64,
    ) -> Self {
        Self::new(
            core,
            task,
            job,
            time,
            logical,
            TraceEvent::Fault { code, reports },
        )
    }

    /// A mode switch at the boundary `logical` that starts hyperperiod `cycle`.
    pub const fn mode_switch(
        core: u8,
        cycle: u64,
        logical: LogicalNs,
        time: MonoNs,
        from_mode: u64,
        to_mode: u64,
    ) -> Self {
        Self::new(
            core,
            NO_TASK,
            cycle,
            time,
            logical,
            TraceEvent::ModeSwitch { from_mode, to_mode },
        )
    }

    /// A supervisor event; reserved for the lifecycle manager.
    pub const fn lifecycle(core: u8, task: u32, time: MonoNs, code: u64, value: u64) -> Self {
        Self::new(
            core,
            task,
            0,
            time,
            LogicalNs(0),
            TraceEvent::Lifecycle { code, value },
        )
    }

    /// A loss marker: `count` records lost on `core`'s ring starting at ring sequence
    /// `at_seq`, the first at `first_lost` and the last at `last_lost_ns`. Written by the
    /// drainer only.
    pub const fn dropped(
        core: u8,
        at_seq: u64,
        count: u64,
        first_lost: MonoNs,
        last_lost_ns: u64,
    ) -> Self {
        Self::new(
            core,
            NO_TASK,
            at_seq,
            first_lost,
            LogicalNs(0),
            TraceEvent::Dropped {
                count,
                last_lost_ns,
            },
        )
    }

    /// [`TraceRecord::time_ns`] as the instant it is.
    pub const fn time(&self) -> MonoNs {
        MonoNs(self.time_ns)
    }

    /// [`TraceRecord::logical_ns`] as the instant it is.
    pub const fn logical(&self) -> LogicalNs {
        LogicalNs(self.logical_ns)
    }

    /// The record's kind, or an error for a kind byte no takt version wrote.
    pub fn kind(&self) -> Result<EventKind, UnknownEventKind> {
        EventKind::try_from(self.kind)
    }

    /// The typed payload. Fails only on an unknown kind byte.
    pub fn event(&self) -> Result<TraceEvent, UnknownEventKind> {
        let (aux, a, b) = (self.aux, self.a, self.b);
        Ok(match self.kind()? {
            EventKind::Release => TraceEvent::Release {
                window_start_ns: a,
                budget_ns: b,
            },
            EventKind::Start => TraceEvent::Start,
            EventKind::End => TraceEvent::End {
                execution_ns: a,
                off_cpu_ns: b,
            },
            EventKind::Publish => TraceEvent::Publish {
                port: aux,
                seq: a,
                visible_at_ns: b,
            },
            EventKind::Read => TraceEvent::Read { port: aux, seq: a },
            EventKind::Overrun => TraceEvent::Overrun {
                execution_ns: a,
                budget_ns: b,
                attribution: aux,
            },
            EventKind::Skip => TraceEvent::Skip { attribution: aux },
            EventKind::ModeSwitch => TraceEvent::ModeSwitch {
                from_mode: a,
                to_mode: b,
            },
            EventKind::Lifecycle => TraceEvent::Lifecycle { code: a, value: b },
            EventKind::Dropped => TraceEvent::Dropped {
                count: a,
                last_lost_ns: b,
            },
            EventKind::Miss => TraceEvent::Miss {
                late_ns: a,
                platform_ns: b,
                attribution: aux,
            },
            EventKind::Fault => TraceEvent::Fault {
                code: aux,
                reports: a,
            },
        })
    }

    /// Whether the record has a task (`task != NO_TASK`).
    pub fn has_task(&self) -> bool {
        self.task != NO_TASK
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn every_event() -> Vec<TraceEvent> {
        vec![
            TraceEvent::Release {
                window_start_ns: 5_000_000,
                budget_ns: 250_000,
            },
            TraceEvent::Start,
            TraceEvent::End {
                execution_ns: 123_456,
                off_cpu_ns: 456,
            },
            TraceEvent::Publish {
                port: 7,
                seq: 42,
                visible_at_ns: 10_000_000,
            },
            TraceEvent::Read { port: 3, seq: 0 },
            TraceEvent::Read {
                port: u16::MAX,
                seq: u64::MAX,
            },
            TraceEvent::Overrun {
                execution_ns: 2_100_000,
                budget_ns: 2_000_000,
                attribution: 1,
            },
            TraceEvent::Skip { attribution: 2 },
            TraceEvent::ModeSwitch {
                from_mode: 0,
                to_mode: 2,
            },
            TraceEvent::Lifecycle { code: 4, value: 99 },
            TraceEvent::Dropped {
                count: 17,
                last_lost_ns: 77,
            },
            TraceEvent::Miss {
                late_ns: 3_000,
                platform_ns: 4_000,
                attribution: 1,
            },
            TraceEvent::Fault {
                code: 513,
                reports: 3,
            },
        ]
    }

    #[test]
    fn every_event_round_trips_through_a_record() {
        let events = every_event();
        // The list must cover every kind, or a new kind could ship without a round trip.
        for kind in EventKind::ALL {
            assert!(
                events.iter().any(|e| e.kind() == kind),
                "{kind} not covered"
            );
        }
        for (i, ev) in events.into_iter().enumerate() {
            let rec = TraceRecord::new(3, i as u32, 1000 + i as u64, MonoNs(11), LogicalNs(22), ev);
            assert_eq!(rec.kind(), Ok(ev.kind()));
            assert_eq!(rec.event(), Ok(ev));
            assert_eq!(
                (rec.core, rec.task, rec.job, rec.time_ns, rec.logical_ns),
                (3, i as u32, 1000 + i as u64, 11, 22)
            );
        }
    }

    #[test]
    fn typed_constructors_put_values_where_the_docs_say() {
        let r = TraceRecord::release(1, 2, 3, LogicalNs(100), MonoNs(105), 90, 7);
        assert_eq!((r.logical_ns, r.time_ns), (100, 105));
        assert_eq!(
            r.event(),
            Ok(TraceEvent::Release {
                window_start_ns: 90,
                budget_ns: 7,
            })
        );

        let p = TraceRecord::publish(0, 4, 9, LogicalNs(100), MonoNs(180), 12, 77, 200);
        assert_eq!((p.aux, p.a, p.b, p.task, p.job), (12, 77, 200, 4, 9));

        let o = TraceRecord::overrun(0, 1, 2, LogicalNs(0), MonoNs(50), 3_000, 2_000, 2);
        assert_eq!(
            o.event(),
            Ok(TraceEvent::Overrun {
                execution_ns: 3_000,
                budget_ns: 2_000,
                attribution: 2,
            })
        );
        assert_eq!(o.aux, 2, "the attribution rides in `aux`");
        let miss = TraceRecord::miss(0, 1, 2, LogicalNs(0), MonoNs(50), 300, 700, 1);
        assert_eq!((miss.aux, miss.a, miss.b), (1, 300, 700));

        let m = TraceRecord::mode_switch(2, 8, LogicalNs(400), MonoNs(401), 1, 2);
        assert_eq!((m.task, m.job, m.a, m.b), (NO_TASK, 8, 1, 2));
        assert!(!m.has_task());

        let d = TraceRecord::dropped(5, 64, 10, MonoNs(1_000), 2_000);
        assert_eq!(
            (d.core, d.job, d.time_ns, d.a, d.b),
            (5, 64, 1_000, 10, 2_000)
        );
        assert_eq!(d.kind(), Ok(EventKind::Dropped));

        let s = TraceRecord::start(0, 1, 2, LogicalNs(3), MonoNs(4));
        assert_eq!((s.logical_ns, s.time_ns), (3, 4));
        let e = TraceRecord::end(0, 1, 2, LogicalNs(3), MonoNs(9), 5, 1);
        assert_eq!(
            e.event(),
            Ok(TraceEvent::End {
                execution_ns: 5,
                off_cpu_ns: 1
            })
        );
        let rd = TraceRecord::read(0, 1, 2, LogicalNs(3), MonoNs(4), 6, 0);
        assert_eq!(rd.event(), Ok(TraceEvent::Read { port: 6, seq: 0 }));
        let sk = TraceRecord::skip(0, 1, 2, LogicalNs(3), MonoNs(4), 1);
        assert_eq!(sk.event(), Ok(TraceEvent::Skip { attribution: 1 }));
        let f = TraceRecord::fault(0, 1, 2, LogicalNs(3), MonoNs(4), 77, 2);
        assert_eq!((f.aux, f.a, f.b, f.task, f.job), (77, 2, 0, 1, 2));
        assert_eq!(
            f.event(),
            Ok(TraceEvent::Fault {
                code: 77,
                reports: 2
            })
        );
        let l = TraceRecord::lifecycle(0, NO_TASK, MonoNs(4), 1, 2);
        assert_eq!(l.event(), Ok(TraceEvent::Lifecycle { code: 1, value: 2 }));
    }

    #[test]
    fn unknown_kind_bytes_are_errors_not_panics() {
        for byte in 0..=u8::MAX {
            let rec = TraceRecord {
                kind: byte,
                ..TraceRecord::default()
            };
            let known = (1..=12).contains(&byte);
            assert_eq!(rec.kind().is_ok(), known, "kind byte {byte}");
            assert_eq!(rec.event().is_ok(), known, "kind byte {byte}");
            if !known {
                let err = rec.event().unwrap_err();
                assert_eq!(err.kind, byte);
                assert!(err.to_string().contains(&byte.to_string()));
            }
        }
    }

    #[test]
    fn kinds_convert_to_and_from_their_byte() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::try_from(kind as u8), Ok(kind));
        }
    }
}

//! Tracing: what the dispatcher records, how it gets off the core, and the file it lands in.
//!
//! Owns: the fixed-size [`TraceRecord`] ([`record`]), the per-core lock-free
//! single-producer single-consumer rings the dispatchers push into ([`ring`]), and the
//! versioned, checksummed trace file with its writer, drainer thread and reader ([`file`]).
//! The producer side must never block, allocate, lock or make a syscall; everything that
//! does (the drainer, the file) runs on a non-real-time thread. It may use `time` and
//! nothing else of takt: the dispatcher passes task, port and mode indices in as numbers,
//! and the file header carries their names so tools need no manifest.

pub mod file;
pub mod record;
pub mod ring;

pub use file::{
    read_all, read_many, spawn_drainer, BreakReason, ChainInfo, ClockKind, DrainSummary, Drainer,
    DrainerError, MergedRecord, ReadManyError, TaskInfo, TraceBreak, TraceFileSummary, TraceHeader,
    TraceOpenError, TraceRead, TraceReadMany, TraceReader, TraceWriteError, TraceWriter,
};
pub use record::{EventKind, TraceEvent, TraceRecord, UnknownEventKind, NO_TASK};
pub use ring::{channel, DrainCount, DropReport, RingConsumer, RingProducer};

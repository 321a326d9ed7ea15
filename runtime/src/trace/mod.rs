//! Tracing: what the dispatcher records, how it gets off the core, and the file it lands in.
//!
//! Owns: the fixed-size [`TraceRecord`] ([`record`]), the per-core lock-free
//! single-producer single-consumer rings the dispatchers push into ([`ring`]), and the
//! versioned, checksummed trace file: its format ([`format`]), the writer ([`writer`]), the
//! drainer thread ([`drain`]), the reader ([`reader`]), the merge of several files
//! ([`merge`]) and the headers of older formats ([`migrate`]). Files only point down that
//! list: `format` ← `migrate` ← `reader` ← `merge`, and `format` ← `writer` ← `drain`.
//! The producer side must never block, allocate, lock or make a syscall; everything that
//! does (the drainer, the file) runs on a non-real-time thread. It may use `time` and
//! nothing else of takt: the dispatcher passes task, port and mode indices in as numbers,
//! and the file header carries their names so tools need no manifest.

pub mod drain;
pub mod format;
pub mod merge;
pub mod migrate;
pub mod reader;
pub mod record;
pub mod ring;
pub mod writer;

pub use drain::{spawn_drainer, DrainSummary, Drainer, DrainerError, FINAL_DRAIN_PASSES};
pub use format::{
    ChainInfo, ClockKind, ModeTasks, TaskInfo, TraceHeader, FORMAT_VERSION, MAGIC, MAX_CHUNK_BYTES,
    MAX_CHUNK_RECORDS, MAX_HEADER_BYTES, OLDEST_FORMAT_VERSION,
};
pub use merge::{read_many, MergedRecord, ReadManyError, TraceFileSummary, TraceReadMany};
pub use reader::{read_all, BreakReason, TraceBreak, TraceOpenError, TraceRead, TraceReader};
pub use record::{EventKind, TraceEvent, TraceRecord, UnknownEventKind, NO_TASK};
pub use ring::{channel, DrainCount, DropReport, RingCapacityError, RingConsumer, RingProducer};
pub use writer::{TraceWriteError, TraceWriter};

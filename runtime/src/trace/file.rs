//! The trace file: its format, the writer, the drainer thread that feeds it, and the reader.
//!
//! Owns: the on-disk layout below, [`TraceWriter`] (buffered file, checksummed chunks,
//! flush + fsync on [`TraceWriter::finish`]), [`spawn_drainer`] (the non-real-time thread
//! that empties the per-core rings into a writer every few milliseconds) and the readers
//! ([`TraceReader`], [`read_all`], [`read_many`]). It must never be called from a dispatch
//! thread, and reading must never panic or allocate without bound, whatever bytes the
//! file holds: a corrupt or truncated file yields every record before the damage plus the
//! byte offset where it broke.
//!
//! # Layout (all integers little-endian)
//!
//! ```text
//! offset  size  field
//! 0       8     magic  "TAKTTRC\0"
//! 8       2     format version (u16) = 4 (versions 1 to 3 are still read, see below)
//! 10      4     header length H (u32), at most MAX_HEADER_BYTES
//! 14      8     header checksum (u64, FNV-1a over the length field and the header bytes)
//! 22      H     header: TraceHeader, bincode 2 (fixed-width little-endian integers)
//! then chunks, each:
//!         4     payload length L (u32), at most MAX_CHUNK_BYTES, = count * 48
//!         4     record count (u32), at most MAX_CHUNK_RECORDS
//!         8     checksum (u64, FNV-1a over the length, count and payload bytes)
//!         L     records, bincode 2 with the same config, 48 bytes each
//! then the end marker: a chunk with L = 0 and count = 0, written by `finish`.
//! ```
//!
//! The version sits right after the magic in a fixed place, so a reader can refuse a
//! future format before it tries to decode anything. The end marker tells a finished file
//! from one cut exactly at a chunk boundary (crash, full disk, truncation). FNV-1a detects
//! every single changed byte in a chunk, which is the damage the reader must never miss;
//! it is no defence against deliberate tampering and is not meant to be.
//!
//! # Versions
//!
//! * 1: the header ends with `chains`.
//! * 2: the header gains `mode_tasks` at its end (which tasks each mode releases and the
//!   mode at cycle 0), so tools can tell a missed release from a task that is not in the
//!   active mode. Chunks and records are unchanged. A version-1 file is still read; its
//!   header then has `mode_tasks: None`.
//! * 3: records carry the attribution of every miss (see `record`): `End` gains the job's
//!   off-CPU time in `b`, `Overrun` and `Skip` the attribution in `aux`, and the new kind
//!   `Miss` (11) marks a job that ended after its LET deadline. The header and the chunk
//!   layout are those of version 2, so versions 2 and 3 decode alike; in an older file
//!   these fields are 0, which tools show as "not attributed".
//! * 4: the new kind `Fault` (12) marks a job that reported a fault (`StepContext::fault`),
//!   with its first code and its count of reports. Nothing else changes, so versions 2 to 4
//!   decode alike; an older file simply has no `Fault` records (tools show 0 faults).

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use bincode::config::{Configuration, Fixint, Limit, LittleEndian};

use super::record::{EventKind, TraceRecord, RECORD_BYTES};
use super::ring::RingConsumer;
use crate::sync::{Arc, AtomicBool, Ordering};

/// The first eight bytes of every takt trace file.
pub const MAGIC: [u8; 8] = *b"TAKTTRC\0";
/// The format version this takt writes (and the newest it reads).
pub const FORMAT_VERSION: u16 = 4;
/// The oldest format version this takt still reads.
pub const OLDEST_FORMAT_VERSION: u16 = 1;
/// Largest header the reader accepts (names of every task, topic and mode fit easily).
pub const MAX_HEADER_BYTES: usize = 1 << 20;
/// Most records in one chunk; the writer splits larger batches.
pub const MAX_CHUNK_RECORDS: usize = 1 << 16;
/// Largest chunk payload the reader accepts, so one chunk never allocates more than 3 MiB.
pub const MAX_CHUNK_BYTES: usize = MAX_CHUNK_RECORDS * RECORD_BYTES;
/// Drain passes after a stop request before the drainer closes the file regardless, so a
/// producer that keeps pushing cannot hold the shutdown forever.
pub const FINAL_DRAIN_PASSES: u32 = 8;

const PREAMBLE_BYTES: usize = 8 + 2 + 4 + 8;
const FRAME_BYTES: usize = 4 + 4 + 8;

type WireConfig = Configuration<LittleEndian, Fixint, Limit<MAX_HEADER_BYTES>>;

/// The one bincode configuration of the format. Spelled out rather than taken from
/// `standard()` so a change of bincode's defaults cannot change the file layout; the limit
/// bounds what decoding may allocate whatever a length prefix claims.
const WIRE: WireConfig = bincode::config::standard()
    .with_little_endian()
    .with_fixed_int_encoding()
    .with_limit::<MAX_HEADER_BYTES>();

/// FNV-1a, 64 bit, over the concatenation of `parts`.
fn fnv1a64(parts: &[&[u8]]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET_BASIS;
    for part in parts {
        for &byte in *part {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

/// Which clock the `time_ns` fields were read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, bincode::Encode, bincode::Decode)]
pub enum ClockKind {
    /// `CLOCK_MONOTONIC`.
    Real,
    /// The simulated clock of `--clock sim`.
    Sim,
}

impl fmt::Display for ClockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClockKind::Real => "real (CLOCK_MONOTONIC)",
            ClockKind::Sim => "simulated",
        })
    }
}

/// Everything a reader needs to label records without the manifest.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct TraceHeader {
    /// Version of the takt that wrote the file.
    pub takt_version: String,
    /// Hash of the deployment manifest; files of one deployment agree on it.
    pub manifest_hash: [u8; 32],
    /// The deployment's epoch on the clock, nanoseconds.
    pub epoch_ns: u64,
    pub clock: ClockKind,
    /// The process (app) that wrote the file.
    pub app_name: String,
    pub hyperperiod_ns: u64,
    /// Task names, indexed by a record's `task`.
    pub task_names: Vec<String>,
    /// Topic (port) names, indexed by the port id of `Publish` and `Read` records.
    pub topic_names: Vec<String>,
    /// Mode names, indexed by the modes of `ModeSwitch` records.
    pub mode_names: Vec<String>,
    /// Per task (same index as `task_names`): its timing and core, so tools can compute
    /// deadlines and utilization without the manifest.
    pub tasks: Vec<TaskInfo>,
    /// The deployment's declared cause-effect chains with the plan's analytic bounds.
    pub chains: Vec<ChainInfo>,
    /// Which tasks each mode releases and the mode at cycle 0 (format 2). `None` in a
    /// format-1 file, or when the writer did not know the plan; tools then infer the
    /// expected releases from the records.
    pub mode_tasks: Option<ModeTasks>,
}

/// The release pattern of every mode, as the plan's tables have it: in each hyperperiod
/// cycle of mode `m`, every task in `tasks[m]` is released once per period (job indices
/// `cycle * hyperperiod / period ..` up to the next cycle's first), every other task not at
/// all. Mode switches take effect only at cycle starts, so this and the `ModeSwitch`
/// records give every release a run owes.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct ModeTasks {
    /// The mode active at cycle 0 (index into `mode_names`).
    pub default_mode: u64,
    /// Per mode (same index as `mode_names`): the task indices its tables release, ascending.
    pub tasks: Vec<Vec<u32>>,
}

impl ModeTasks {
    /// Whether mode `mode` releases task `task`; `None` for a mode it does not describe.
    pub fn releases(&self, mode: u64, task: u32) -> Option<bool> {
        let set = usize::try_from(mode).ok().and_then(|m| self.tasks.get(m))?;
        Some(set.binary_search(&task).is_ok())
    }
}

/// The header of format version 1: [`TraceHeader`] without `mode_tasks`. Only decoded
/// (and, in tests, encoded to make version-1 files).
#[derive(bincode::Decode)]
#[cfg_attr(test, derive(bincode::Encode))]
struct HeaderV1 {
    takt_version: String,
    manifest_hash: [u8; 32],
    epoch_ns: u64,
    clock: ClockKind,
    app_name: String,
    hyperperiod_ns: u64,
    task_names: Vec<String>,
    topic_names: Vec<String>,
    mode_names: Vec<String>,
    tasks: Vec<TaskInfo>,
    chains: Vec<ChainInfo>,
}

impl From<HeaderV1> for TraceHeader {
    fn from(h: HeaderV1) -> Self {
        TraceHeader {
            takt_version: h.takt_version,
            manifest_hash: h.manifest_hash,
            epoch_ns: h.epoch_ns,
            clock: h.clock,
            app_name: h.app_name,
            hyperperiod_ns: h.hyperperiod_ns,
            task_names: h.task_names,
            topic_names: h.topic_names,
            mode_names: h.mode_names,
            tasks: h.tasks,
            chains: h.chains,
            mode_tasks: None,
        }
    }
}

/// A task's timing as the plan used it.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct TaskInfo {
    pub core: u32,
    pub period_ns: u64,
    pub offset_ns: u64,
    pub budget_ns: u64,
    pub let_ns: u64,
}

/// A declared cause-effect chain: `tasks[i]` writes `ports[i]`, which `tasks[i + 1]` reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct ChainInfo {
    pub name: String,
    /// Task indices, sensor end first.
    pub tasks: Vec<u32>,
    /// Port ids linking consecutive tasks (`tasks.len() - 1` of them).
    pub ports: Vec<u16>,
    /// The plan's analytic bounds (see `plan::ChainBound`); 0 when the chain is active in no mode.
    pub max_data_age_ns: u64,
    pub max_reaction_ns: u64,
}

impl TraceHeader {
    /// A header for `app_name` written by this takt; the caller fills in the rest.
    pub fn new(app_name: impl Into<String>, clock: ClockKind) -> Self {
        TraceHeader {
            takt_version: env!("CARGO_PKG_VERSION").to_string(),
            manifest_hash: [0; 32],
            epoch_ns: 0,
            clock,
            app_name: app_name.into(),
            hyperperiod_ns: 0,
            task_names: Vec::new(),
            topic_names: Vec::new(),
            mode_names: Vec::new(),
            tasks: Vec::new(),
            chains: Vec::new(),
            mode_tasks: None,
        }
    }

    /// Name of task index `task`, if the header has it.
    pub fn task_name(&self, task: u32) -> Option<&str> {
        self.task_names.get(task as usize).map(String::as_str)
    }

    /// Name of port id `port`, if the header has it.
    pub fn topic_name(&self, port: u16) -> Option<&str> {
        self.topic_names.get(usize::from(port)).map(String::as_str)
    }

    /// Name of mode index `mode`, if the header has it.
    pub fn mode_name(&self, mode: u64) -> Option<&str> {
        usize::try_from(mode)
            .ok()
            .and_then(|m| self.mode_names.get(m))
            .map(String::as_str)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

/// Writing a trace file failed.
#[derive(Debug)]
pub enum TraceWriteError {
    /// The operating system refused `op` on the file.
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    /// The header encodes to more than [`MAX_HEADER_BYTES`] (too many or too long names).
    HeaderTooLarge { path: PathBuf, bytes: usize },
    /// bincode refused a value; names what was being encoded.
    Encode { path: PathBuf, what: String },
}

impl fmt::Display for TraceWriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceWriteError::Io { path, op, source } => {
                write!(f, "trace file {}: {op} failed: {source}", path.display())
            }
            TraceWriteError::HeaderTooLarge { path, bytes } => write!(
                f,
                "trace file {}: the header encodes to {bytes} bytes; at most {MAX_HEADER_BYTES} are allowed (shorten or reduce the task, topic and mode names)",
                path.display()
            ),
            TraceWriteError::Encode { path, what } => {
                write!(f, "trace file {}: cannot encode {what}", path.display())
            }
        }
    }
}

impl std::error::Error for TraceWriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TraceWriteError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Writes one trace file: the header at creation, then a checksummed chunk per
/// [`TraceWriter::write_records`] call, then the end marker in [`TraceWriter::finish`].
#[derive(Debug)]
pub struct TraceWriter {
    path: PathBuf,
    out: BufWriter<File>,
    bytes_written: u64,
    records_written: u64,
    /// Reused between chunks so steady-state writing does not allocate.
    payload: Vec<u8>,
}

impl TraceWriter {
    /// Creates (or truncates) `path` and writes the preamble and `header`.
    pub fn create(path: impl AsRef<Path>, header: &TraceHeader) -> Result<Self, TraceWriteError> {
        let path = path.as_ref().to_path_buf();
        let body = bincode::encode_to_vec(header, WIRE).map_err(|e| TraceWriteError::Encode {
            path: path.clone(),
            what: format!("the header: {e}"),
        })?;
        if body.len() > MAX_HEADER_BYTES {
            return Err(TraceWriteError::HeaderTooLarge {
                path,
                bytes: body.len(),
            });
        }
        // Bounded by MAX_HEADER_BYTES just above, so the conversion cannot fail.
        let body_len = u32::try_from(body.len()).map_err(|_| TraceWriteError::HeaderTooLarge {
            path: path.clone(),
            bytes: body.len(),
        })?;
        let file = File::create(&path).map_err(|source| TraceWriteError::Io {
            path: path.clone(),
            op: "create",
            source,
        })?;
        let mut writer = TraceWriter {
            path,
            out: BufWriter::with_capacity(1 << 16, file),
            bytes_written: 0,
            records_written: 0,
            payload: Vec::with_capacity(1 << 16),
        };
        let len_bytes = body_len.to_le_bytes();
        let checksum = fnv1a64(&[&len_bytes, &body]);
        writer.put(&MAGIC)?;
        writer.put(&FORMAT_VERSION.to_le_bytes())?;
        writer.put(&len_bytes)?;
        writer.put(&checksum.to_le_bytes())?;
        writer.put(&body)?;
        // The header reaches the file now, not with the first full buffer: a process killed
        // before then (a standby that never took over, a crash at start-up) leaves a
        // readable file with no records instead of an empty one.
        writer.out.flush().map_err(|source| TraceWriteError::Io {
            path: writer.path.clone(),
            op: "write",
            source,
        })?;
        Ok(writer)
    }

    /// Appends `records` as one chunk (several if there are more than
    /// [`MAX_CHUNK_RECORDS`]). An empty slice writes nothing.
    pub fn write_records(&mut self, records: &[TraceRecord]) -> Result<(), TraceWriteError> {
        for chunk in records.chunks(MAX_CHUNK_RECORDS) {
            self.payload.clear();
            for (i, rec) in chunk.iter().enumerate() {
                let mut buf = [0u8; RECORD_BYTES];
                let n = bincode::encode_into_slice(rec, &mut buf, WIRE).map_err(|e| {
                    TraceWriteError::Encode {
                        path: self.path.clone(),
                        what: format!("record {i} of a chunk: {e}"),
                    }
                })?;
                self.payload.extend_from_slice(&buf[..n]);
            }
            // Both fit in u32: at most MAX_CHUNK_RECORDS records of RECORD_BYTES each.
            let len = (self.payload.len() as u32).to_le_bytes();
            let count = (chunk.len() as u32).to_le_bytes();
            let checksum = fnv1a64(&[&len, &count, &self.payload]).to_le_bytes();
            let payload = std::mem::take(&mut self.payload);
            let result = self
                .put(&len)
                .and_then(|()| self.put(&count))
                .and_then(|()| self.put(&checksum))
                .and_then(|()| self.put(&payload));
            self.payload = payload;
            result?;
            self.records_written += chunk.len() as u64;
        }
        Ok(())
    }

    /// Hands buffered bytes to the operating system (no fsync), so a crash of this process
    /// loses nothing already written.
    pub fn flush(&mut self) -> Result<(), TraceWriteError> {
        self.out.flush().map_err(|source| TraceWriteError::Io {
            path: self.path.clone(),
            op: "flush",
            source,
        })
    }

    /// Writes the end marker, flushes and fsyncs. Returns the number of bytes in the file.
    pub fn finish(mut self) -> Result<u64, TraceWriteError> {
        let zero = 0u32.to_le_bytes();
        let checksum = fnv1a64(&[&zero, &zero]).to_le_bytes();
        self.put(&zero)?;
        self.put(&zero)?;
        self.put(&checksum)?;
        self.flush()?;
        self.out
            .get_ref()
            .sync_all()
            .map_err(|source| TraceWriteError::Io {
                path: self.path.clone(),
                op: "fsync",
                source,
            })?;
        Ok(self.bytes_written)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records written so far (markers included).
    pub fn records_written(&self) -> u64 {
        self.records_written
    }

    /// Bytes written so far, preamble and header included.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), TraceWriteError> {
        self.out
            .write_all(bytes)
            .map_err(|source| TraceWriteError::Io {
                path: self.path.clone(),
                op: "write",
                source,
            })?;
        self.bytes_written += bytes.len() as u64;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Draining
// ---------------------------------------------------------------------------------------

/// What a drainer wrote before it closed the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainSummary {
    pub path: PathBuf,
    /// Records written, `Dropped` markers included.
    pub records: u64,
    /// Records lost in the rings, summed over the markers written.
    pub dropped: u64,
    /// Size of the finished file.
    pub bytes: u64,
    /// Rings whose producer was still alive or that still held records when the final
    /// drain gave up; their last records (and losses) are not in the file.
    pub rings_unfinished: usize,
}

/// The drainer could not start, write, or stop in time.
#[derive(Debug)]
pub enum DrainerError {
    /// The thread could not be spawned.
    Spawn(io::Error),
    /// Writing the file failed; the drainer stopped draining at that point.
    Write(TraceWriteError),
    /// The drainer did not finish its final drain within the stop timeout. It keeps
    /// running detached and still finishes the file if it can.
    StopTimeout { timeout: Duration },
    /// The drainer thread panicked; the file has no end marker.
    Panicked,
}

impl fmt::Display for DrainerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DrainerError::Spawn(e) => write!(f, "cannot start the trace drainer thread: {e}"),
            DrainerError::Write(e) => write!(f, "trace drainer: {e}"),
            DrainerError::StopTimeout { timeout } => write!(
                f,
                "trace drainer did not finish within {} ms of the stop request",
                timeout.as_millis()
            ),
            DrainerError::Panicked => {
                write!(
                    f,
                    "trace drainer thread panicked; the trace file is unfinished"
                )
            }
        }
    }
}

impl std::error::Error for DrainerError {}

/// Handle to a running drainer thread. Dropping it without [`Drainer::stop`] asks the
/// thread to stop and lets it finish the file on its own.
#[derive(Debug)]
pub struct Drainer {
    stop: Arc<AtomicBool>,
    thread: std::thread::Thread,
    done: mpsc::Receiver<Result<DrainSummary, TraceWriteError>>,
    // Kept only so the thread is not reported as detached in debuggers; never joined,
    // because `stop` waits on `done` with a timeout instead.
    _handle: JoinHandle<()>,
}

/// Starts a non-real-time thread that drains every ring in `consumers` into `writer`
/// every `period` (a few milliseconds is right: long enough to batch, short enough that
/// rings sized for a few periods of records do not overflow), with `Dropped` markers where
/// records were lost, until [`Drainer::stop`]; then it drains what is left (at most
/// [`FINAL_DRAIN_PASSES`] passes) and finishes the file.
pub fn spawn_drainer(
    consumers: Vec<RingConsumer>,
    writer: TraceWriter,
    period: Duration,
) -> Result<Drainer, DrainerError> {
    let stop = Arc::new(AtomicBool::new(false));
    let stop_seen = Arc::clone(&stop);
    let (done_tx, done) = mpsc::sync_channel(1);
    let handle = std::thread::Builder::new()
        .name("takt-trace-drain".to_string())
        .spawn(move || {
            let result = drain_loop(consumers, writer, period, &stop_seen);
            // The receiver may be gone (the handle was dropped); nobody is left to tell.
            let _ = done_tx.send(result);
        })
        .map_err(DrainerError::Spawn)?;
    Ok(Drainer {
        stop,
        thread: handle.thread().clone(),
        done,
        _handle: handle,
    })
}

impl Drainer {
    /// Asks the drainer to stop, waits at most `timeout` for its final drain and the
    /// fsync, and returns what it wrote.
    pub fn stop(self, timeout: Duration) -> Result<DrainSummary, DrainerError> {
        self.request_stop();
        match self.done.recv_timeout(timeout) {
            Ok(result) => result.map_err(DrainerError::Write),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(DrainerError::StopTimeout { timeout }),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(DrainerError::Panicked),
        }
    }

    fn request_stop(&self) {
        // SYNC POINT: Release pairs with the Acquire load in `drain_loop`; the flag guards
        // no other data (records travel through the rings' own atomics), so this only
        // makes the request visible promptly.
        self.stop.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

impl Drop for Drainer {
    fn drop(&mut self) {
        self.request_stop();
    }
}

fn drain_loop(
    mut consumers: Vec<RingConsumer>,
    mut writer: TraceWriter,
    period: Duration,
    stop: &AtomicBool,
) -> Result<DrainSummary, TraceWriteError> {
    // One pass takes at most a full ring per consumer plus its two loss markers; sizing the
    // buffer for that up front means the drainer does not allocate after start either.
    let batch_capacity: usize = consumers.iter().map(|c| c.capacity() + 2).sum();
    let mut batch = Vec::with_capacity(batch_capacity);
    let mut dropped = 0u64;
    // SYNC POINT: Acquire pairs with the Release store in `Drainer::request_stop`.
    while !stop.load(Ordering::Acquire) {
        dropped += drain_pass(&mut consumers, &mut batch, &mut writer)?.1;
        // Woken early by `request_stop`; otherwise a bounded wait of one period.
        std::thread::park_timeout(period);
    }
    for _ in 0..FINAL_DRAIN_PASSES {
        let (entries, lost) = drain_pass(&mut consumers, &mut batch, &mut writer)?;
        dropped += lost;
        if entries == 0 {
            break;
        }
    }
    let rings_unfinished = consumers.iter().filter(|c| !c.is_finished()).count();
    let records = writer.records_written();
    let path = writer.path().to_path_buf();
    let bytes = writer.finish()?;
    Ok(DrainSummary {
        path,
        records,
        dropped,
        bytes,
        rings_unfinished,
    })
}

/// Drains every ring once into one chunk. Returns (entries written, records lost).
fn drain_pass(
    consumers: &mut [RingConsumer],
    batch: &mut Vec<TraceRecord>,
    writer: &mut TraceWriter,
) -> Result<(usize, u64), TraceWriteError> {
    batch.clear();
    let mut lost = 0u64;
    for consumer in consumers.iter_mut() {
        lost += consumer.drain_into(batch).dropped;
    }
    if !batch.is_empty() {
        writer.write_records(batch)?;
        writer.flush()?;
    }
    Ok((batch.len(), lost))
}

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

/// The file could not be opened as a takt trace at all: nothing in it can be trusted.
#[derive(Debug)]
pub enum TraceOpenError {
    Io {
        path: PathBuf,
        source: io::Error,
    },
    /// The file does not start with [`MAGIC`].
    BadMagic {
        path: PathBuf,
        found: Vec<u8>,
    },
    /// The file's format version is outside [`OLDEST_FORMAT_VERSION`]..=[`FORMAT_VERSION`].
    UnsupportedVersion {
        path: PathBuf,
        found: u16,
    },
    /// The preamble or header is truncated or corrupt.
    Header {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
}

impl fmt::Display for TraceOpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceOpenError::Io { path, source } => {
                write!(f, "cannot read trace file {}: {source}", path.display())
            }
            TraceOpenError::BadMagic { path, found } => write!(
                f,
                "{} is not a takt trace file: it starts with {:?}, a trace starts with {:?}",
                path.display(),
                String::from_utf8_lossy(found),
                String::from_utf8_lossy(&MAGIC)
            ),
            TraceOpenError::UnsupportedVersion { path, found } => write!(
                f,
                "{} has trace format version {found}; this takt ({}) reads format version {FORMAT_VERSION} and the older versions down to {OLDEST_FORMAT_VERSION} only",
                path.display(),
                env!("CARGO_PKG_VERSION")
            ),
            TraceOpenError::Header {
                path,
                offset,
                reason,
            } => write!(
                f,
                "{}: trace header unreadable at byte {offset}: {reason}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for TraceOpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TraceOpenError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Why reading stopped before the end marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BreakReason {
    /// The file ends inside a chunk.
    Truncated { needed: u64, available: u64 },
    /// The file ends at a chunk boundary without the end marker: the writer did not
    /// finish (still running, crashed) or the file was cut.
    MissingEnd,
    /// A chunk claims a payload above [`MAX_CHUNK_BYTES`].
    ChunkTooLarge { len: u32 },
    /// A chunk's length does not match its record count.
    LengthMismatch { len: u32, count: u32 },
    /// A chunk's bytes do not match its checksum.
    Checksum { stored: u64, computed: u64 },
    /// A record in a checksum-valid chunk does not decode.
    BadRecord { index: u32, reason: String },
    /// Bytes follow the end marker.
    DataAfterEnd,
    /// The operating system failed a read.
    Io(String),
}

impl fmt::Display for BreakReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BreakReason::Truncated { needed, available } => write!(
                f,
                "file ends inside a chunk ({needed} bytes needed, {available} present)"
            ),
            BreakReason::MissingEnd => f.write_str(
                "file ends without the end-of-trace marker (writer still running, crashed, or the file was cut)",
            ),
            BreakReason::ChunkTooLarge { len } => write!(
                f,
                "chunk claims {len} bytes; at most {MAX_CHUNK_BYTES} are allowed"
            ),
            BreakReason::LengthMismatch { len, count } => write!(
                f,
                "chunk of {len} bytes claims {count} records of {RECORD_BYTES} bytes"
            ),
            BreakReason::Checksum { stored, computed } => write!(
                f,
                "chunk checksum mismatch (stored {stored:016x}, computed {computed:016x}): corrupt bytes"
            ),
            BreakReason::BadRecord { index, reason } => {
                write!(f, "record {index} of the chunk: {reason}")
            }
            BreakReason::DataAfterEnd => f.write_str("bytes follow the end-of-trace marker"),
            BreakReason::Io(e) => write!(f, "read failed: {e}"),
        }
    }
}

/// Where and why a file stopped being readable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceBreak {
    /// Byte offset of the chunk (or trailing data) that could not be read.
    pub offset: u64,
    pub reason: BreakReason,
}

impl fmt::Display for TraceBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.reason)
    }
}

/// Everything readable in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceRead {
    pub path: PathBuf,
    pub header: TraceHeader,
    /// Records in file order (per ring in push order, markers in place).
    pub records: Vec<TraceRecord>,
    /// Records lost in the rings, summed over the `Dropped` markers read.
    pub dropped_total: u64,
    /// Where reading stopped early, if it did; `None` for a complete file.
    pub error: Option<TraceBreak>,
}

/// Reads a trace file chunk by chunk, with at most one chunk's bytes in memory.
#[derive(Debug)]
pub struct TraceReader {
    path: PathBuf,
    input: BufReader<File>,
    header: TraceHeader,
    /// Offset of the next chunk.
    offset: u64,
    done: bool,
    payload: Vec<u8>,
}

/// Reads into `buf` until it is full or the input ends; returns the bytes read.
fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(b)
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(b)
}

impl TraceReader {
    /// Opens `path` and reads its preamble and header. Refuses anything that is not a
    /// takt trace of a version this takt reads (1 to 4) with an intact header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TraceOpenError> {
        let path = path.as_ref().to_path_buf();
        let io_err = |source| TraceOpenError::Io {
            path: path.clone(),
            source,
        };
        let header_err = |offset: usize, reason: String| TraceOpenError::Header {
            path: path.clone(),
            offset: offset as u64,
            reason,
        };
        let file = crate::fsio::open_regular(&path).map_err(io_err)?;
        let mut input = BufReader::with_capacity(1 << 16, file);

        let mut preamble = [0u8; PREAMBLE_BYTES];
        let got = read_up_to(&mut input, &mut preamble).map_err(io_err)?;
        let magic_got = got.min(MAGIC.len());
        if preamble[..magic_got] != MAGIC[..magic_got] || got < MAGIC.len() {
            return Err(TraceOpenError::BadMagic {
                path,
                found: preamble[..magic_got].to_vec(),
            });
        }
        if got < 10 {
            return Err(header_err(
                got,
                format!("file is {got} bytes long, too short for the format version"),
            ));
        }
        let version = u16::from_le_bytes([preamble[8], preamble[9]]);
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(TraceOpenError::UnsupportedVersion {
                path,
                found: version,
            });
        }
        if got < PREAMBLE_BYTES {
            return Err(header_err(
                got,
                format!(
                    "file is {got} bytes long, too short for the {PREAMBLE_BYTES}-byte preamble"
                ),
            ));
        }
        let header_len = le_u32(&preamble[10..14]);
        let stored = le_u64(&preamble[14..22]);
        if header_len as usize > MAX_HEADER_BYTES {
            return Err(header_err(
                10,
                format!("header claims {header_len} bytes; at most {MAX_HEADER_BYTES} are allowed"),
            ));
        }
        let mut body = vec![0u8; header_len as usize];
        let got = read_up_to(&mut input, &mut body).map_err(io_err)?;
        if got < body.len() {
            return Err(header_err(
                PREAMBLE_BYTES + got,
                format!("file ends inside the header ({header_len} bytes needed, {got} present)"),
            ));
        }
        let computed = fnv1a64(&[&preamble[10..14], &body]);
        if computed != stored {
            return Err(header_err(
                PREAMBLE_BYTES,
                format!(
                    "header checksum mismatch (stored {stored:016x}, computed {computed:016x})"
                ),
            ));
        }
        let decoded = if version == 1 {
            bincode::decode_from_slice::<HeaderV1, _>(&body, WIRE)
                .map(|(h, used)| (TraceHeader::from(h), used))
        } else {
            bincode::decode_from_slice::<TraceHeader, _>(&body, WIRE)
        };
        let (header, used) = decoded.map_err(|e| {
            header_err(
                PREAMBLE_BYTES,
                format!("format-{version} header does not decode: {e}"),
            )
        })?;
        if used != body.len() {
            return Err(header_err(
                PREAMBLE_BYTES + used,
                format!("{} unexpected bytes after the header", body.len() - used),
            ));
        }
        Ok(TraceReader {
            path,
            input,
            header,
            offset: (PREAMBLE_BYTES + body.len()) as u64,
            done: false,
            payload: Vec::new(),
        })
    }

    /// The file's header.
    pub fn header(&self) -> &TraceHeader {
        &self.header
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the next chunk's records to `out`. `Ok(Some(n))`: `n` records appended;
    /// `Ok(None)`: the end marker was reached (or reading already stopped); `Err`: the
    /// file breaks here, nothing of this chunk was appended, and later calls return
    /// `Ok(None)`.
    pub fn next_chunk(&mut self, out: &mut Vec<TraceRecord>) -> Result<Option<usize>, TraceBreak> {
        if self.done {
            return Ok(None);
        }
        let result = self.read_chunk(out);
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
        }
        result
    }

    /// Reads every remaining chunk.
    pub fn read_rest(mut self) -> TraceRead {
        let mut records = Vec::new();
        let error = loop {
            match self.next_chunk(&mut records) {
                Ok(Some(_)) => {}
                Ok(None) => break None,
                Err(b) => break Some(b),
            }
        };
        let dropped_total = records
            .iter()
            .filter(|r| r.kind == EventKind::Dropped as u8)
            .fold(0u64, |sum, r| sum.saturating_add(r.a));
        TraceRead {
            path: self.path,
            header: self.header,
            records,
            dropped_total,
            error,
        }
    }

    fn read_chunk(&mut self, out: &mut Vec<TraceRecord>) -> Result<Option<usize>, TraceBreak> {
        let at = self.offset;
        let broke = |reason| TraceBreak { offset: at, reason };
        let io_break = |e: io::Error| TraceBreak {
            offset: at,
            reason: BreakReason::Io(e.to_string()),
        };

        let mut frame = [0u8; FRAME_BYTES];
        let got = read_up_to(&mut self.input, &mut frame).map_err(io_break)?;
        if got == 0 {
            return Err(broke(BreakReason::MissingEnd));
        }
        if got < FRAME_BYTES {
            return Err(broke(BreakReason::Truncated {
                needed: FRAME_BYTES as u64,
                available: got as u64,
            }));
        }
        let len = le_u32(&frame[0..4]);
        let count = le_u32(&frame[4..8]);
        let stored = le_u64(&frame[8..16]);
        if len as usize > MAX_CHUNK_BYTES {
            return Err(broke(BreakReason::ChunkTooLarge { len }));
        }
        if len as usize != count as usize * RECORD_BYTES {
            return Err(broke(BreakReason::LengthMismatch { len, count }));
        }
        // Bounded by MAX_CHUNK_BYTES above.
        self.payload.resize(len as usize, 0);
        let got = read_up_to(&mut self.input, &mut self.payload).map_err(io_break)?;
        if got < self.payload.len() {
            return Err(broke(BreakReason::Truncated {
                needed: (FRAME_BYTES + self.payload.len()) as u64,
                available: (FRAME_BYTES + got) as u64,
            }));
        }
        let computed = fnv1a64(&[&frame[0..4], &frame[4..8], &self.payload]);
        if computed != stored {
            return Err(broke(BreakReason::Checksum { stored, computed }));
        }
        let next_offset = at + (FRAME_BYTES + self.payload.len()) as u64;
        if count == 0 {
            // The end marker: the file must end here.
            let mut extra = [0u8; 1];
            let more = read_up_to(&mut self.input, &mut extra).map_err(io_break)?;
            if more > 0 {
                return Err(TraceBreak {
                    offset: next_offset,
                    reason: BreakReason::DataAfterEnd,
                });
            }
            self.offset = next_offset;
            return Ok(None);
        }
        let start = out.len();
        out.reserve(count as usize);
        for (index, bytes) in self.payload.chunks_exact(RECORD_BYTES).enumerate() {
            let index = index as u32;
            let decoded: Result<(TraceRecord, usize), _> = bincode::decode_from_slice(bytes, WIRE);
            let rec = match decoded {
                Ok((rec, used)) if used == RECORD_BYTES => rec,
                Ok((_, used)) => {
                    out.truncate(start);
                    return Err(broke(BreakReason::BadRecord {
                        index,
                        reason: format!("decodes from {used} bytes instead of {RECORD_BYTES}"),
                    }));
                }
                Err(e) => {
                    out.truncate(start);
                    return Err(broke(BreakReason::BadRecord {
                        index,
                        reason: e.to_string(),
                    }));
                }
            };
            if let Err(e) = rec.kind() {
                out.truncate(start);
                return Err(broke(BreakReason::BadRecord {
                    index,
                    reason: e.to_string(),
                }));
            }
            out.push(rec);
        }
        self.offset = next_offset;
        Ok(Some(count as usize))
    }
}

/// Reads everything readable in `path`. `Err` only when the file cannot be opened as a
/// trace (I/O, magic, version, header); damage after the header is reported in
/// [`TraceRead::error`] with every record before it.
pub fn read_all(path: impl AsRef<Path>) -> Result<TraceRead, TraceOpenError> {
    Ok(TraceReader::open(path)?.read_rest())
}

/// One file's part of a [`read_many`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceFileSummary {
    pub path: PathBuf,
    pub header: TraceHeader,
    pub record_count: usize,
    pub dropped_total: u64,
    pub error: Option<TraceBreak>,
}

/// A record and the index (into [`TraceReadMany::files`]) of the file it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MergedRecord {
    pub file: usize,
    pub record: TraceRecord,
}

/// Several files of one deployment (one per process), merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceReadMany {
    pub files: Vec<TraceFileSummary>,
    /// Every file's records, ordered by `time_ns`; ties keep file order, then the order
    /// within the file.
    pub records: Vec<MergedRecord>,
    pub dropped_total: u64,
}

/// Files that cannot be read together.
#[derive(Debug)]
pub enum ReadManyError {
    NoFiles,
    Open(TraceOpenError),
    /// Two files disagree on a header field that must be shared by one deployment.
    Mismatch {
        field: &'static str,
        first: PathBuf,
        first_value: String,
        other: PathBuf,
        other_value: String,
    },
}

impl fmt::Display for ReadManyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadManyError::NoFiles => f.write_str("no trace files given"),
            ReadManyError::Open(e) => e.fmt(f),
            ReadManyError::Mismatch {
                field,
                first,
                first_value,
                other,
                other_value,
            } => write!(
                f,
                "{} and {} are not from the same deployment run: {field} is {first_value} in the first and {other_value} in the second",
                first.display(),
                other.display()
            ),
        }
    }
}

impl std::error::Error for ReadManyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadManyError::Open(e) => Some(e),
            _ => None,
        }
    }
}

/// Reads several trace files of one run and merges their records by time. Their headers
/// must agree on the manifest hash, the epoch and the clock, or the times would not be
/// comparable.
pub fn read_many<P: AsRef<Path>>(paths: &[P]) -> Result<TraceReadMany, ReadManyError> {
    let mut reads = Vec::with_capacity(paths.len());
    for path in paths {
        reads.push(read_all(path).map_err(ReadManyError::Open)?);
    }
    let first = reads.first().ok_or(ReadManyError::NoFiles)?;
    for other in &reads[1..] {
        let mismatch = |field, a: String, b: String| ReadManyError::Mismatch {
            field,
            first: first.path.clone(),
            first_value: a,
            other: other.path.clone(),
            other_value: b,
        };
        let (h0, h1) = (&first.header, &other.header);
        if h0.manifest_hash != h1.manifest_hash {
            return Err(mismatch(
                "manifest hash",
                hex(&h0.manifest_hash),
                hex(&h1.manifest_hash),
            ));
        }
        if h0.epoch_ns != h1.epoch_ns {
            return Err(mismatch(
                "epoch_ns",
                h0.epoch_ns.to_string(),
                h1.epoch_ns.to_string(),
            ));
        }
        if h0.clock != h1.clock {
            return Err(mismatch(
                "clock",
                h0.clock.to_string(),
                h1.clock.to_string(),
            ));
        }
    }
    let total: usize = reads.iter().map(|r| r.records.len()).sum();
    let mut records = Vec::with_capacity(total);
    let mut files = Vec::with_capacity(reads.len());
    let mut dropped_total = 0u64;
    for (file, read) in reads.into_iter().enumerate() {
        records.extend(
            read.records
                .iter()
                .map(|&record| MergedRecord { file, record }),
        );
        dropped_total = dropped_total.saturating_add(read.dropped_total);
        files.push(TraceFileSummary {
            path: read.path,
            header: read.header,
            record_count: read.records.len(),
            dropped_total: read.dropped_total,
            error: read.error,
        });
    }
    // Stable, so ties keep file order and, within a file, drain order.
    records.sort_by_key(|m| m.record.time_ns);
    Ok(TraceReadMany {
        files,
        records,
        dropped_total,
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_record_encodes_to_its_48_byte_memory_layout() {
        let rec = TraceRecord::publish(3, 0x0102_0304, 7, 100, 200, 0xabcd, 9, 300);
        let mut buf = [0u8; 64];
        let n = bincode::encode_into_slice(rec, &mut buf, WIRE).unwrap();
        assert_eq!(n, RECORD_BYTES);
        assert_eq!(buf[0], EventKind::Publish as u8);
        assert_eq!(buf[1], 3);
        assert_eq!(&buf[2..4], &0xabcdu16.to_le_bytes());
        assert_eq!(&buf[4..8], &0x0102_0304u32.to_le_bytes());
        assert_eq!(&buf[8..16], &200u64.to_le_bytes());
        assert_eq!(&buf[16..24], &100u64.to_le_bytes());
        assert_eq!(&buf[24..32], &7u64.to_le_bytes());
        assert_eq!(&buf[32..40], &9u64.to_le_bytes());
        assert_eq!(&buf[40..48], &300u64.to_le_bytes());
        let (back, used): (TraceRecord, usize) =
            bincode::decode_from_slice(&buf[..n], WIRE).unwrap();
        assert_eq!((back, used), (rec, RECORD_BYTES));
    }

    #[test]
    fn fnv_matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(&[b""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(&[b"foo", b"bar"]), fnv1a64(&[b"foobar"]));
    }

    #[test]
    fn header_round_trips_and_names_resolve() {
        let mut h = TraceHeader::new("acc", ClockKind::Sim);
        h.task_names = vec!["radar".into(), "control".into()];
        h.topic_names = vec!["objects".into()];
        h.mode_names = vec!["drive".into(), "parked".into()];
        h.manifest_hash = [7; 32];
        h.mode_tasks = Some(ModeTasks {
            default_mode: 1,
            tasks: vec![vec![0, 1], vec![1]],
        });
        let bytes = bincode::encode_to_vec(&h, WIRE).unwrap();
        let (back, _): (TraceHeader, usize) = bincode::decode_from_slice(&bytes, WIRE).unwrap();
        assert_eq!(back, h);
        let modes = back.mode_tasks.as_ref().unwrap();
        assert_eq!(modes.releases(0, 0), Some(true));
        assert_eq!(modes.releases(1, 0), Some(false));
        assert_eq!(modes.releases(2, 0), None);
        assert_eq!(h.task_name(1), Some("control"));
        assert_eq!(h.task_name(2), None);
        assert_eq!(h.topic_name(0), Some("objects"));
        assert_eq!(h.mode_name(1), Some("parked"));
        assert_eq!(h.mode_name(u64::MAX), None);
    }

    #[test]
    fn a_header_claiming_a_huge_name_list_is_refused_without_allocating_it() {
        // A length prefix of 2^60 names: the decoder must refuse it by the limit rather
        // than try to reserve it.
        let mut h = TraceHeader::new("x", ClockKind::Real);
        h.mode_names = vec!["m".into()];
        let mut bytes = bincode::encode_to_vec(&h, WIRE).unwrap();
        // The header ends with the mode list (its u64 length prefix, then the single name as
        // a u64 length 1 and the byte 'm'), the empty task and chain lists (a u64 length
        // each) and `mode_tasks: None` (one tag byte).
        let at = bytes.len() - (8 + 8 + 1 + 8 + 8 + 1);
        assert_eq!(&bytes[at..at + 8], &1u64.to_le_bytes());
        assert_eq!(bytes[at + 16], b'm');
        bytes[at..at + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
        let decoded: Result<(TraceHeader, usize), _> = bincode::decode_from_slice(&bytes, WIRE);
        assert!(decoded.is_err());
    }
    #[test]
    fn a_version_1_file_is_still_read_without_mode_tasks() {
        let mut h = TraceHeader::new("old", ClockKind::Sim);
        h.task_names = vec!["radar".into()];
        h.mode_names = vec!["drive".into()];
        h.hyperperiod_ns = 10;
        h.tasks = vec![TaskInfo {
            core: 1,
            period_ns: 10,
            offset_ns: 0,
            budget_ns: 2,
            let_ns: 10,
        }];
        let v1 = HeaderV1 {
            takt_version: h.takt_version.clone(),
            manifest_hash: h.manifest_hash,
            epoch_ns: h.epoch_ns,
            clock: h.clock,
            app_name: h.app_name.clone(),
            hyperperiod_ns: h.hyperperiod_ns,
            task_names: h.task_names.clone(),
            topic_names: h.topic_names.clone(),
            mode_names: h.mode_names.clone(),
            tasks: h.tasks.clone(),
            chains: h.chains.clone(),
        };
        let body = bincode::encode_to_vec(&v1, WIRE).unwrap();
        let len = (body.len() as u32).to_le_bytes();
        let record = TraceRecord::release(1, 0, 3, 30, 31, 30, 2);
        let mut payload = [0u8; RECORD_BYTES];
        bincode::encode_into_slice(record, &mut payload, WIRE).unwrap();
        let (plen, count, zero) = (
            (RECORD_BYTES as u32).to_le_bytes(),
            1u32.to_le_bytes(),
            0u32.to_le_bytes(),
        );
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&len);
        bytes.extend_from_slice(&fnv1a64(&[&len, &body]).to_le_bytes());
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(&plen);
        bytes.extend_from_slice(&count);
        bytes.extend_from_slice(&fnv1a64(&[&plen, &count, &payload]).to_le_bytes());
        bytes.extend_from_slice(&payload);
        bytes.extend_from_slice(&zero);
        bytes.extend_from_slice(&zero);
        bytes.extend_from_slice(&fnv1a64(&[&zero, &zero]).to_le_bytes());
        let path = std::env::temp_dir().join(format!(
            "takt-trace-v1-{}-{:?}.trc",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, &bytes).unwrap();
        let read = read_all(&path);
        let _ = std::fs::remove_file(&path);
        let read = read.unwrap();
        assert_eq!(read.header, h);
        assert_eq!(read.header.mode_tasks, None);
        assert_eq!(read.records, vec![record]);
        assert_eq!(read.error, None);

        // The same header announced as version 2 lacks the `mode_tasks` tag: refused, not
        // misread.
        bytes[8..10].copy_from_slice(&2u16.to_le_bytes());
        let path2 = path.with_extension("v2");
        std::fs::write(&path2, &bytes).unwrap();
        let err = read_all(&path2);
        let _ = std::fs::remove_file(&path2);
        let err = err.unwrap_err();
        assert!(
            err.to_string().contains("format-2 header does not decode"),
            "{err}"
        );
    }
}

//! The drainer thread: the non-real-time thread that empties the per-core rings into a
//! trace file.
//!
//! Owns: [`spawn_drainer`], its [`Drainer`] handle (stop with a timeout), the drain loop
//! with its bounded final drain ([`FINAL_DRAIN_PASSES`]) and what it reports
//! ([`DrainSummary`], [`DrainerError`]). It runs on its own thread and must never run on a
//! dispatch thread or make a producer wait: the rings' consumer side is all it touches of
//! them, and its batch buffer is sized at start so it does not allocate after.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::record::TraceRecord;
use super::ring::RingConsumer;
use super::writer::{TraceWriteError, TraceWriter};
use crate::sync::{Arc, AtomicBool, Ordering};

/// Drain passes after a stop request before the drainer closes the file regardless, so a
/// producer that keeps pushing cannot hold the shutdown forever.
pub const FINAL_DRAIN_PASSES: u32 = 8;

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

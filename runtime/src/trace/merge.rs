//! Reading several trace files of one run as one.
//!
//! Owns: [`read_many`], the check that the files' headers agree on what makes their times
//! comparable (manifest hash, epoch, clock), the merge of their records by time
//! ([`TraceReadMany`], [`MergedRecord`]) and [`ReadManyError`]. It reads each file through
//! [`read_all`] and must never decode file bytes itself.

use std::fmt;
use std::path::{Path, PathBuf};

use super::format::TraceHeader;
use super::reader::{read_all, TraceBreak, TraceOpenError};
use super::record::TraceRecord;

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
                h0.clock.describe().to_string(),
                h1.clock.describe().to_string(),
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

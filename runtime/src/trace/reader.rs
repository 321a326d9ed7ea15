//! Reading one trace file.
//!
//! Owns: [`TraceReader`] (preamble and header checks, then one chunk at a time with at
//! most one chunk's bytes in memory), [`read_all`], and what reading reports
//! ([`TraceOpenError`] when the file is not a readable trace at all, [`TraceBreak`] where a
//! damaged file stops being readable). Reading must never panic or allocate without bound,
//! whatever bytes the file holds: a corrupt or truncated file yields every record before
//! the damage plus the byte offset where it broke. Older header layouts are the
//! [`migrate`](super::migrate) module's business, not this one's.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use super::format::{
    fnv1a64, TraceHeader, FORMAT_VERSION, FRAME_BYTES, MAGIC, MAX_CHUNK_BYTES, MAX_HEADER_BYTES,
    OLDEST_FORMAT_VERSION, PREAMBLE_BYTES, WIRE,
};
use super::migrate;
use super::record::{EventKind, TraceRecord, RECORD_BYTES};

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
        let (header, used) = migrate::decode_header(version, &body).map_err(|e| {
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::time::{LogicalNs, MonoNs};
    use crate::trace::format::{ClockKind, TaskInfo};
    use crate::trace::migrate::HeaderV1;

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
        let record = TraceRecord::release(1, 0, 3, LogicalNs(30), MonoNs(31), 30, 2);
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

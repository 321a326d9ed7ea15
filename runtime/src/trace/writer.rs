//! Writing one trace file.
//!
//! Owns: [`TraceWriter`] (buffered file, the preamble and header at creation, one
//! checksummed chunk per batch, the end marker with flush + fsync on
//! [`TraceWriter::finish`]) and [`TraceWriteError`]. It writes only the current format
//! version, encodes nothing the [`format`](super::format) module does not define, and must
//! never be called from a dispatch thread: it allocates, blocks and makes syscalls.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::format::{
    fnv1a64, TraceHeader, FORMAT_VERSION, MAGIC, MAX_CHUNK_RECORDS, MAX_HEADER_BYTES, WIRE,
};
use super::record::{TraceRecord, RECORD_BYTES};

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

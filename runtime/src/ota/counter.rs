//! The anti-rollback record of one app: the highest version ever committed, kept in a
//! file of its own beside the journal.
//!
//! Owns the second, independent copy of the anti-rollback counter and its byte format.
//! The journal holds the first copy; [`Journal::open`](super::journal::Journal::open)
//! reads both, takes the larger, repairs the other, and refuses when both are lost on a
//! state directory whose slots were written. So deleting or corrupting any single file
//! never lowers the counter, and an older signed bundle never becomes installable again.
//! It must never decide what runs; it only remembers how new the installed version was.
//!
//! # Layout of `.anti-rollback/<app>` (little-endian)
//!
//! ```text
//! magic     8 bytes  b"TAKTARB1"
//! version   u64      the highest committed version
//! app len   u16, app name (UTF-8)
//! sha256    32 bytes over every byte before it
//! ```
//!
//! Written like every file that matters: temporary file, fsync, rename, fsync directory.

use std::fmt;
use std::io;

use sha2::{Digest, Sha256};

use super::slots;
use super::storage::{replace_atomically, Storage};

const MAGIC: [u8; 8] = *b"TAKTARB1";
/// The directory of the records; a name no app can have (app names never start with `.`).
pub const DIR: &str = ".anti-rollback";
const MAX_BYTES: u64 = 4096;

/// Why the record could not be read or written.
#[derive(Debug)]
pub enum CounterError {
    Io { path: String, error: io::Error },
    Corrupt { path: String, reason: String },
}

impl fmt::Display for CounterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CounterError::Io { path, error } => write!(f, "{path}: {error}"),
            CounterError::Corrupt { path, reason } => {
                write!(f, "{path}: corrupt anti-rollback record: {reason}")
            }
        }
    }
}

impl std::error::Error for CounterError {}

/// `.anti-rollback/<app>`, after checking the app name is one safe path component.
pub fn path(app: &str) -> Result<String, slots::SlotError> {
    slots::slot_dir(app, slots::Slot::A)?;
    Ok(format!("{DIR}/{app}"))
}

fn encode(app: &str, version: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 8 + 2 + app.len() + 32);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    // App names are one path component (at most 255 bytes), so the length fits.
    out.extend_from_slice(&(app.len() as u16).to_le_bytes());
    out.extend_from_slice(app.as_bytes());
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// Reads `app`'s record: `None` when there is none.
pub fn read(s: &dyn Storage, app: &str) -> Result<Option<u64>, CounterError> {
    let path = path(app).map_err(|e| CounterError::Corrupt {
        path: format!("{DIR}/{app}"),
        reason: e.to_string(),
    })?;
    let corrupt = |reason: String| CounterError::Corrupt {
        path: path.clone(),
        reason,
    };
    let Some(bytes) = s.read(&path, MAX_BYTES).map_err(|error| CounterError::Io {
        path: path.clone(),
        error,
    })?
    else {
        return Ok(None);
    };
    if bytes.len() < 8 + 8 + 2 + 32 || bytes[..8] != MAGIC {
        return Err(corrupt(format!(
            "bad magic or too short ({} bytes); expected `TAKTARB1`",
            bytes.len()
        )));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return Err(corrupt("checksum mismatch".into()));
    }
    let mut v = [0u8; 8];
    v.copy_from_slice(&body[8..16]);
    let name_len = usize::from(u16::from_le_bytes([body[16], body[17]]));
    if body.len() != 18 + name_len || &body[18..] != app.as_bytes() {
        return Err(corrupt(format!(
            "the record is not app `{app}`'s (another app's record copied here?)"
        )));
    }
    Ok(Some(u64::from_le_bytes(v)))
}

/// Records `version` as `app`'s highest committed version, durably.
pub fn write(s: &mut dyn Storage, app: &str, version: u64) -> Result<(), CounterError> {
    let path = path(app).map_err(|e| CounterError::Corrupt {
        path: format!("{DIR}/{app}"),
        reason: e.to_string(),
    })?;
    let io_err = |error| CounterError::Io {
        path: path.clone(),
        error,
    };
    s.create_dir(DIR).map_err(io_err)?;
    replace_atomically(s, &path, &encode(app, version)).map_err(|error| CounterError::Io {
        path: path.clone(),
        error,
    })
}

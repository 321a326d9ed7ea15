//! The A/B slots of one app: two directories, one running, one receiving updates.
//!
//! Owns unpacking a bundle's entries into a slot and checking that a slot holds exactly
//! one complete version. It must never write the slot the journal says is running, and
//! never decide which slot runs: [`journal`](super::journal) does.
//!
//! A slot `<app>/slot-a` is complete when its stamp file `.stamp` exists and every file
//! the stamp lists has the SHA-256 the stamp records. Unpacking removes the stamp first
//! (durably), so a slot interrupted half-way is never taken for complete.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::bundle::{check_entry_name, Entry, MAX_ENTRIES, MAX_ENTRY_BYTES};
use super::storage::{parent, replace_atomically, Storage};

/// One of an app's two slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a complete slot holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotStamp {
    pub version: u64,
    /// `(name, mode, sha256)` of every file, in bundle order; the first is the executable.
    pub files: Vec<(String, u32, [u8; 32])>,
}

/// Largest stamp file read.
const MAX_STAMP_BYTES: u64 = 64 << 10;
const STAMP: &str = ".stamp";

/// Why a slot operation failed.
#[derive(Debug)]
pub enum SlotError {
    BadAppName {
        app: String,
    },
    BadEntry {
        name: String,
        reason: String,
    },
    Io {
        path: String,
        error: io::Error,
    },
    /// The slot has no stamp: never unpacked, or interrupted.
    Incomplete {
        dir: String,
    },
    Corrupt {
        path: String,
        reason: String,
    },
}

impl fmt::Display for SlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlotError::BadAppName { app } => write!(
                f,
                "app name `{app}` cannot name a slot directory (one path component, no `..`)"
            ),
            SlotError::BadEntry { name, reason } => write!(f, "entry `{name}`: {reason}"),
            SlotError::Io { path, error } => write!(f, "{path}: {error}"),
            SlotError::Incomplete { dir } => {
                write!(
                    f,
                    "slot {dir} is incomplete (no stamp): never unpacked or interrupted"
                )
            }
            SlotError::Corrupt { path, reason } => write!(f, "{path}: {reason}"),
        }
    }
}

impl std::error::Error for SlotError {}

fn io_at(path: &str) -> impl FnOnce(io::Error) -> SlotError + '_ {
    move |error| SlotError::Io {
        path: path.to_string(),
        error,
    }
}

/// `<app>/slot-<a|b>`, after checking the app name is one safe path component.
pub fn slot_dir(app: &str, slot: Slot) -> Result<String, SlotError> {
    if check_entry_name(app).is_err() || app.contains('/') || app.starts_with('.') {
        return Err(SlotError::BadAppName {
            app: app.to_string(),
        });
    }
    Ok(format!("{app}/slot-{}", slot.name()))
}

/// Unpacks `entries` as `version` into `slot`, durably: afterwards the slot is complete
/// even across a power cut. The caller guarantees `slot` is not the running slot.
pub fn unpack(
    s: &mut dyn Storage,
    app: &str,
    slot: Slot,
    version: u64,
    entries: &[Entry],
) -> Result<SlotStamp, SlotError> {
    let dir = slot_dir(app, slot)?;
    if entries.is_empty() || entries.len() > MAX_ENTRIES as usize {
        return Err(SlotError::BadEntry {
            name: String::new(),
            reason: format!("need 1..={MAX_ENTRIES} entries, got {}", entries.len()),
        });
    }
    for e in entries {
        check_entry_name(&e.name).map_err(|p| SlotError::BadEntry {
            name: e.name.clone(),
            reason: p.to_string(),
        })?;
        if e.name == STAMP {
            return Err(SlotError::BadEntry {
                name: e.name.clone(),
                reason: format!("`{STAMP}` is reserved for the slot's stamp"),
            });
        }
    }
    s.create_dir(&dir).map_err(io_at(&dir))?;
    let stamp_path = format!("{dir}/{STAMP}");
    // 1. Retire the old stamp durably, so nothing below can be mistaken for complete.
    let old = read_stamp(s, &dir).ok();
    s.remove(&stamp_path).map_err(io_at(&stamp_path))?;
    s.fsync_dir(&dir).map_err(io_at(&dir))?;
    // 2. Remove the old version's files, so the slot never holds a mix.
    let mut dirs = vec![dir.clone()];
    if let Some(old) = old {
        for (name, _, _) in &old.files {
            let path = format!("{dir}/{name}");
            s.remove(&path).map_err(io_at(&path))?;
            push_unique(&mut dirs, parent(&path));
        }
    }
    for name in s.list(&dir).map_err(io_at(&dir))? {
        let path = format!("{dir}/{name}");
        s.remove(&path).map_err(io_at(&path))?;
    }
    // 3. Write, chmod and fsync every file, then fsync every directory that gained one.
    let mut files = Vec::with_capacity(entries.len());
    for e in entries {
        let path = format!("{dir}/{}", e.name);
        let sub = parent(&path).to_string();
        if sub != dir {
            s.create_dir(&sub).map_err(io_at(&sub))?;
        }
        push_unique(&mut dirs, &sub);
        s.write(&path, &e.bytes).map_err(io_at(&path))?;
        s.set_mode(&path, e.mode).map_err(io_at(&path))?;
        s.fsync_file(&path).map_err(io_at(&path))?;
        files.push((e.name.clone(), e.mode, Sha256::digest(&e.bytes).into()));
    }
    for d in &dirs {
        s.fsync_dir(d).map_err(io_at(d))?;
    }
    // 4. The stamp last, atomically: from here on the slot is complete.
    let stamp = SlotStamp { version, files };
    let bytes =
        bincode::serde::encode_to_vec(&stamp, bincode::config::standard()).map_err(|e| {
            SlotError::Corrupt {
                path: stamp_path.clone(),
                reason: format!("cannot encode the stamp: {e}"),
            }
        })?;
    replace_atomically(s, &stamp_path, &bytes).map_err(io_at(&stamp_path))?;
    Ok(stamp)
}

fn push_unique(dirs: &mut Vec<String>, d: &str) {
    if !dirs.iter().any(|x| x == d) {
        dirs.push(d.to_string());
    }
}

fn read_stamp(s: &dyn Storage, dir: &str) -> Result<SlotStamp, SlotError> {
    let path = format!("{dir}/{STAMP}");
    let bytes = s
        .read(&path, MAX_STAMP_BYTES)
        .map_err(io_at(&path))?
        .ok_or_else(|| SlotError::Incomplete {
            dir: dir.to_string(),
        })?;
    let (stamp, _): (SlotStamp, usize) = bincode::serde::decode_from_slice(
        &bytes,
        bincode::config::standard().with_limit::<{ MAX_STAMP_BYTES as usize }>(),
    )
    .map_err(|e| SlotError::Corrupt {
        path: path.clone(),
        reason: format!("unreadable stamp: {e}"),
    })?;
    Ok(stamp)
}

/// The stamp of `slot` without hashing its files: which version it claims to hold. For
/// status displays, where reading and hashing a large executable would cost the running
/// system memory bandwidth and page cache for nothing; [`verify`] before running it.
pub fn peek(s: &dyn Storage, app: &str, slot: Slot) -> Result<SlotStamp, SlotError> {
    read_stamp(s, &slot_dir(app, slot)?)
}

/// Checks that `slot` is complete: the stamp exists and every file it lists has the
/// recorded digest. Returns the stamp (and so the version the slot holds).
pub fn verify(s: &dyn Storage, app: &str, slot: Slot) -> Result<SlotStamp, SlotError> {
    let dir = slot_dir(app, slot)?;
    let stamp = read_stamp(s, &dir)?;
    for (name, _, digest) in &stamp.files {
        let path = format!("{dir}/{name}");
        let bytes = s
            .read(&path, MAX_ENTRY_BYTES)
            .map_err(io_at(&path))?
            .ok_or_else(|| SlotError::Corrupt {
                path: path.clone(),
                reason: "listed in the stamp but missing".to_string(),
            })?;
        if <[u8; 32]>::from(Sha256::digest(&bytes)) != *digest {
            return Err(SlotError::Corrupt {
                path,
                reason: "content differs from the digest in the stamp".to_string(),
            });
        }
    }
    Ok(stamp)
}

//! The A/B slots of one app: two directories, one running, one receiving updates.
//!
//! Owns unpacking a bundle's entries into a slot and checking that a slot holds exactly
//! one complete version. It must never write the slot the journal says is running, and
//! never decide which slot runs: [`journal`](super::journal) does.
//!
//! A slot `<app>/slot-a` is complete when its stamp file `.stamp` exists, carries a valid
//! HMAC-SHA256 under the device's slot key, and every file the stamp lists has the
//! SHA-256 the stamp records. Unpacking removes the stamp first (durably), so a slot
//! interrupted half-way is never taken for complete.
//!
//! # Why the stamp is keyed
//!
//! An unkeyed stamp is only a checksum: whoever can write the state directory can replace
//! an executable and write a matching stamp. The slot key (32 random bytes from the OS,
//! `<state dir>/.slot-key`, mode 0600, made on the first unpack) authenticates every
//! stamp, binding it to the app, the slot and the version, so a replaced file or a stamp
//! copied from another slot is detected at start and at activation. The key never leaves
//! the device; losing it makes every slot unverifiable (a clear refusal, never a silent
//! acceptance).

use std::fmt;
use std::io;

use hmac::{Hmac, Mac};
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
/// The device-local key that authenticates slot stamps, at the storage root.
pub const KEY_FILE: &str = ".slot-key";
const KEY_BYTES: usize = 32;
const MAC_BYTES: usize = 32;
/// Domain separation: a stamp MAC is never valid as any other MAC made with the key.
const MAC_CONTEXT: &[u8] = b"takt-slot-stamp-v1\0";

/// The device-local secret that authenticates slot stamps. Never printed.
#[derive(Clone)]
pub struct SlotKey([u8; KEY_BYTES]);

impl fmt::Debug for SlotKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SlotKey(..)")
    }
}

impl SlotKey {
    fn mac(&self, app: &str, slot: Slot, body: &[u8]) -> Hmac<Sha256> {
        // `new_from_slice` accepts keys of any length; 32 bytes never fails.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        m.update(MAC_CONTEXT);
        m.update(&(app.len() as u64).to_le_bytes());
        m.update(app.as_bytes());
        m.update(slot.name().as_bytes());
        m.update(body);
        m
    }
}

/// Reads the slot key; `None` when the storage has none yet.
pub fn load_key(s: &dyn Storage) -> Result<Option<SlotKey>, SlotError> {
    let Some(bytes) = s.read(KEY_FILE, 4096).map_err(io_at(KEY_FILE))? else {
        return Ok(None);
    };
    let key: [u8; KEY_BYTES] = bytes.as_slice().try_into().map_err(|_| SlotError::Corrupt {
        path: KEY_FILE.to_string(),
        reason: format!(
            "the slot key is {} bytes, a slot key is exactly {KEY_BYTES}; every slot stamped with the lost key is unverifiable",
            bytes.len()
        ),
    })?;
    Ok(Some(SlotKey(key)))
}

/// Reads the slot key, making one from the OS random source when there is none. Made
/// before any stamp that uses it, and durable first: mode 0600 before a byte of the key
/// is written, fsynced, renamed into place, directory fsynced.
pub fn load_or_create_key(s: &mut dyn Storage) -> Result<SlotKey, SlotError> {
    if let Some(k) = load_key(s)? {
        return Ok(k);
    }
    let mut key = [0u8; KEY_BYTES];
    rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut key).map_err(|e| {
        SlotError::Io {
            path: KEY_FILE.to_string(),
            error: io::Error::other(format!("no random bytes from the OS for the slot key: {e}")),
        }
    })?;
    let tmp = format!("{KEY_FILE}.tmp");
    s.write(&tmp, &[]).map_err(io_at(&tmp))?;
    s.set_mode(&tmp, 0o600).map_err(io_at(&tmp))?;
    s.write(&tmp, &key).map_err(io_at(&tmp))?;
    s.fsync_file(&tmp).map_err(io_at(&tmp))?;
    s.rename(&tmp, KEY_FILE).map_err(io_at(KEY_FILE))?;
    s.fsync_dir("").map_err(io_at(KEY_FILE))?;
    Ok(SlotKey(key))
}

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
    /// The stamp's MAC does not verify under the device's slot key: the stamp or the slot
    /// was written by someone without the key.
    NotAuthentic {
        path: String,
    },
    /// The stamp has no MAC: written by a takt from before slot keys.
    LegacyStamp {
        path: String,
    },
    /// Slots are stamped but the device has no slot key to check them with.
    NoKey {
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
            SlotError::NotAuthentic { path } => write!(
                f,
                "{path}: the stamp is not authentic (its HMAC does not verify under the device's slot key {KEY_FILE}): the slot was altered or stamped elsewhere"
            ),
            SlotError::LegacyStamp { path } => write!(
                f,
                "{path}: the stamp has no MAC (written by a takt from before authenticated slot stamps), so the slot cannot be trusted and is not run; stage a newer version to replace it"
            ),
            SlotError::NoKey { dir } => write!(
                f,
                "slot {dir} is stamped but the state directory has no slot key ({KEY_FILE}); without it no slot can be trusted"
            ),
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
    let key = load_or_create_key(s)?;
    s.create_dir(&dir).map_err(io_at(&dir))?;
    let stamp_path = format!("{dir}/{STAMP}");
    // 1. Retire the old stamp durably, so nothing below can be mistaken for complete.
    // Its file list (authentic or not) only names files to remove inside the slot.
    let old = read_stamp(s, &dir).ok().map(|(stamp, _)| stamp);
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
    // 4. The stamp last, atomically, with its MAC: from here on the slot is complete.
    let stamp = SlotStamp { version, files };
    let mut bytes =
        bincode::serde::encode_to_vec(&stamp, bincode::config::standard()).map_err(|e| {
            SlotError::Corrupt {
                path: stamp_path.clone(),
                reason: format!("cannot encode the stamp: {e}"),
            }
        })?;
    let mac = key.mac(app, slot, &bytes).finalize().into_bytes();
    bytes.extend_from_slice(&mac);
    replace_atomically(s, &stamp_path, &bytes).map_err(io_at(&stamp_path))?;
    Ok(stamp)
}

fn push_unique(dirs: &mut Vec<String>, d: &str) {
    if !dirs.iter().any(|x| x == d) {
        dirs.push(d.to_string());
    }
}

/// The stamp of the slot in `dir` and its MAC, not yet checked.
fn read_stamp(s: &dyn Storage, dir: &str) -> Result<(SlotStamp, Vec<u8>), SlotError> {
    let path = format!("{dir}/{STAMP}");
    let bytes = s
        .read(&path, MAX_STAMP_BYTES)
        .map_err(io_at(&path))?
        .ok_or_else(|| SlotError::Incomplete {
            dir: dir.to_string(),
        })?;
    let corrupt = |reason: String| SlotError::Corrupt {
        path: path.clone(),
        reason,
    };
    // A stamp as takt wrote it before slot keys (no MAC): named as such, never trusted.
    let legacy = bincode::serde::decode_from_slice::<SlotStamp, _>(
        &bytes,
        bincode::config::standard().with_limit::<{ MAX_STAMP_BYTES as usize }>(),
    )
    .is_ok_and(|(_, used)| used == bytes.len());
    if legacy {
        return Err(SlotError::LegacyStamp { path: path.clone() });
    }
    let body_len = bytes.len().checked_sub(MAC_BYTES).ok_or_else(|| {
        corrupt(format!(
            "the stamp is {} bytes, shorter than its MAC",
            bytes.len()
        ))
    })?;
    let (body, _) = bytes.split_at(body_len);
    let (stamp, used): (SlotStamp, usize) = bincode::serde::decode_from_slice(
        body,
        bincode::config::standard().with_limit::<{ MAX_STAMP_BYTES as usize }>(),
    )
    .map_err(|e| corrupt(format!("unreadable stamp: {e}")))?;
    if used != body.len() {
        return Err(corrupt(format!(
            "{} bytes left over after the stamp",
            body.len() - used
        )));
    }
    Ok((stamp, bytes))
}

/// Checks the MAC over the stamp file `bytes` of `app`'s `slot`.
fn authenticate(
    s: &dyn Storage,
    app: &str,
    slot: Slot,
    dir: &str,
    bytes: &[u8],
) -> Result<(), SlotError> {
    let key = load_key(s)?.ok_or_else(|| SlotError::NoKey {
        dir: dir.to_string(),
    })?;
    let (body, mac) = bytes.split_at(bytes.len().saturating_sub(MAC_BYTES));
    key.mac(app, slot, body)
        .verify_slice(mac)
        .map_err(|_| SlotError::NotAuthentic {
            path: format!("{dir}/{STAMP}"),
        })
}

/// The stamp of `slot` without hashing its files: which version it claims to hold. For
/// status displays, where reading and hashing a large executable would cost the running
/// system memory bandwidth and page cache for nothing; [`verify`] before running it.
pub fn peek(s: &dyn Storage, app: &str, slot: Slot) -> Result<SlotStamp, SlotError> {
    read_stamp(s, &slot_dir(app, slot)?).map(|(stamp, _)| stamp)
}

/// Whether `slot` has a stamp file at all (authentic or not): a slot that was written.
pub fn has_stamp(s: &dyn Storage, app: &str, slot: Slot) -> bool {
    slot_dir(app, slot)
        .ok()
        .and_then(|dir| s.read(&format!("{dir}/{STAMP}"), MAX_STAMP_BYTES).ok())
        .flatten()
        .is_some()
}

/// Checks that `slot` is complete and authentic: the stamp exists, its MAC verifies under
/// the device's slot key, and every file it lists has the recorded digest. Returns the
/// stamp (and so the version the slot holds).
pub fn verify(s: &dyn Storage, app: &str, slot: Slot) -> Result<SlotStamp, SlotError> {
    let dir = slot_dir(app, slot)?;
    let (stamp, bytes) = read_stamp(s, &dir)?;
    authenticate(s, app, slot, &dir, &bytes)?;
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

//! The writer of bundles, which `takt ota sign` uses.
//!
//! Owns the checks an entry list must pass before a byte is written and the streaming of
//! the signed part through SHA-256 into the signature. It must never write a bundle the
//! reader would refuse (it checks the same limits up front), and never touch the disk
//! itself: it writes to the `Write` it is given.

use std::fmt;
use std::io::{self, Write};

use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

use super::expiry::now_unix_s;
use super::fragment::Fragment;
use super::{
    check_entry_name, Entry, NameProblem, DEFAULT_VALIDITY_S, FORMAT_VERSION, KIND_DELTA,
    KIND_FILE, MAGIC, MAX_ENTRIES, MAX_ENTRY_BYTES, MAX_FRAGMENT_BYTES, TRAILER_BYTES,
};
use crate::ota::to_hex;

/// Why a bundle could not be built.
#[derive(Debug)]
pub enum BundleWriteError {
    NoEntries,
    TooManyEntries { count: usize },
    BadEntryName { name: String, problem: NameProblem },
    DuplicateEntry { name: String },
    BadMode { name: String, mode: u32 },
    EntryTooLarge { name: String, len: u64 },
    FragmentTooLarge { len: usize },
    Encode(String),
    Io(io::Error),
}

impl fmt::Display for BundleWriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BundleWriteError::NoEntries => {
                write!(f, "a bundle needs at least the app executable as its first entry")
            }
            BundleWriteError::TooManyEntries { count } => {
                write!(f, "{count} entries; at most {MAX_ENTRIES} are allowed")
            }
            BundleWriteError::BadEntryName { name, problem } => {
                write!(f, "entry `{name}`: {problem}")
            }
            BundleWriteError::DuplicateEntry { name } => {
                write!(f, "entry `{name}` appears twice; names must be unique")
            }
            BundleWriteError::BadMode { name, mode } => write!(
                f,
                "entry `{name}`: mode {mode:o} has bits beyond 0o777; only permission bits are allowed"
            ),
            BundleWriteError::EntryTooLarge { name, len } => write!(
                f,
                "entry `{name}` is {len} bytes; at most {MAX_ENTRY_BYTES} bytes are allowed"
            ),
            BundleWriteError::FragmentTooLarge { len } => write!(
                f,
                "the manifest fragment encodes to {len} bytes; at most {MAX_FRAGMENT_BYTES} are allowed"
            ),
            BundleWriteError::Encode(e) => write!(f, "cannot encode the manifest fragment: {e}"),
            BundleWriteError::Io(e) => write!(f, "cannot write the bundle: {e}"),
        }
    }
}

impl std::error::Error for BundleWriteError {}

/// What goes into a bundle's signed header besides the fragment and the entries.
#[derive(Clone, Debug, Default)]
pub struct SignOptions {
    /// Seconds since 1970-01-01 UTC; `None`: [`DEFAULT_VALIDITY_S`] from now.
    pub expires_unix_s: Option<u64>,
    /// A signed key document to carry (from `takt ota keys sign`).
    pub key_document: Option<Vec<u8>>,
    /// Ship entry 0 (the executable) as this patch instead of its bytes: a delta bundle.
    /// The delta's result must be entry 0's bytes ([`crate::ota::delta::Delta::make`]).
    pub delta: Option<crate::ota::delta::Delta>,
}

/// Builds and signs a bundle in memory, valid for [`DEFAULT_VALIDITY_S`].
pub fn sign(
    fragment: &Fragment,
    entries: &[Entry],
    key: &SigningKey,
) -> Result<Vec<u8>, BundleWriteError> {
    sign_with(fragment, entries, key, &SignOptions::default())
}

/// Builds and signs a bundle in memory with an explicit expiry or key document.
pub fn sign_with(
    fragment: &Fragment,
    entries: &[Entry],
    key: &SigningKey,
    options: &SignOptions,
) -> Result<Vec<u8>, BundleWriteError> {
    let mut out = Vec::new();
    sign_to(&mut out, fragment, entries, key, options, &mut |_| {})?;
    Ok(out)
}

/// Streams a signed bundle into `out`, calling `progress` with the bytes written so far,
/// so a caller can show progress for large executables.
pub fn sign_to(
    out: &mut dyn Write,
    fragment: &Fragment,
    entries: &[Entry],
    key: &SigningKey,
    options: &SignOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<(), BundleWriteError> {
    check_entries_for_writing(entries)?;
    let expires = options
        .expires_unix_s
        .unwrap_or_else(|| now_unix_s().saturating_add(DEFAULT_VALIDITY_S));
    let key_doc = options.key_document.as_deref().unwrap_or(&[]);
    if let Some(doc) = &options.key_document {
        crate::ota::keys::parse_unverified(doc)
            .map_err(|e| BundleWriteError::Encode(format!("the key document: {e}")))?;
    }
    if let Some(d) = &options.delta {
        // Never sign a patch whose promise differs from the executable it stands for.
        let exe = &entries[0].bytes;
        let exe_sha256: [u8; 32] = Sha256::digest(exe).into();
        if d.result_len != exe.len() as u64 || d.result_sha256 != exe_sha256 {
            return Err(BundleWriteError::Encode(format!(
                "the delta's result (SHA-256 {}, {} bytes) is not entry `{}` (SHA-256 {}, {} bytes)",
                to_hex(&d.result_sha256),
                d.result_len,
                entries[0].name,
                to_hex(&exe_sha256),
                exe.len()
            )));
        }
        if d.patch.len() as u64 > MAX_ENTRY_BYTES {
            return Err(BundleWriteError::EntryTooLarge {
                name: entries[0].name.clone(),
                len: d.patch.len() as u64,
            });
        }
    }
    let fragment_bytes = bincode::serde::encode_to_vec(fragment, bincode::config::standard())
        .map_err(|e| BundleWriteError::Encode(e.to_string()))?;
    if fragment_bytes.len() > MAX_FRAGMENT_BYTES as usize {
        return Err(BundleWriteError::FragmentTooLarge {
            len: fragment_bytes.len(),
        });
    }
    let mut w = HashingWriter {
        out,
        hasher: Sha256::new(),
        written: 0,
    };
    w.put(&MAGIC)?;
    w.put(&FORMAT_VERSION.to_le_bytes())?;
    w.put(&expires.to_le_bytes())?;
    // Bounded above (the key document by `keys::parse_unverified`, the fragment by the
    // check before), so the casts to the on-disk widths cannot truncate.
    w.put(&(key_doc.len() as u32).to_le_bytes())?;
    w.put(key_doc)?;
    w.put(&(fragment_bytes.len() as u32).to_le_bytes())?;
    w.put(&fragment_bytes)?;
    w.put(&(entries.len() as u32).to_le_bytes())?;
    for (i, e) in entries.iter().enumerate() {
        w.put(&(e.name.len() as u16).to_le_bytes())?;
        w.put(e.name.as_bytes())?;
        let delta = options.delta.as_ref().filter(|_| i == 0);
        w.put(&[if delta.is_some() {
            KIND_DELTA
        } else {
            KIND_FILE
        }])?;
        w.put(&e.mode.to_le_bytes())?;
        if let Some(d) = delta {
            w.put(&d.base_sha256)?;
            w.put(&d.result_sha256)?;
            w.put(&d.result_len.to_le_bytes())?;
            w.put(&(d.patch.len() as u64).to_le_bytes())?;
            w.put(&d.patch)?;
            progress(w.written);
            continue;
        }
        w.put(&(e.bytes.len() as u64).to_le_bytes())?;
        for chunk in e.bytes.chunks(1 << 20) {
            w.put(chunk)?;
            progress(w.written);
        }
    }
    let digest: [u8; 32] = w.hasher.finalize().into();
    let signature = key.sign(&digest);
    w.out
        .write_all(key.verifying_key().as_bytes())
        .map_err(BundleWriteError::Io)?;
    w.out
        .write_all(&signature.to_bytes())
        .map_err(BundleWriteError::Io)?;
    progress(w.written + TRAILER_BYTES as u64);
    Ok(())
}

fn check_entries_for_writing(entries: &[Entry]) -> Result<(), BundleWriteError> {
    if entries.is_empty() {
        return Err(BundleWriteError::NoEntries);
    }
    if entries.len() > MAX_ENTRIES as usize {
        return Err(BundleWriteError::TooManyEntries {
            count: entries.len(),
        });
    }
    for (i, e) in entries.iter().enumerate() {
        check_entry_name(&e.name).map_err(|problem| BundleWriteError::BadEntryName {
            name: e.name.clone(),
            problem,
        })?;
        if entries[..i].iter().any(|o| o.name == e.name) {
            return Err(BundleWriteError::DuplicateEntry {
                name: e.name.clone(),
            });
        }
        if e.mode & !0o777 != 0 {
            return Err(BundleWriteError::BadMode {
                name: e.name.clone(),
                mode: e.mode,
            });
        }
        if e.bytes.len() as u64 > MAX_ENTRY_BYTES {
            return Err(BundleWriteError::EntryTooLarge {
                name: e.name.clone(),
                len: e.bytes.len() as u64,
            });
        }
    }
    Ok(())
}

struct HashingWriter<'a> {
    out: &'a mut dyn Write,
    hasher: Sha256,
    written: u64,
}

impl HashingWriter<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), BundleWriteError> {
        self.hasher.update(bytes);
        self.out.write_all(bytes).map_err(BundleWriteError::Io)?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// Writes a bundle with one raw entry of any kind, bypassing the writer's checks, so tests
/// can show that the reader refuses what an attacker could hand-craft (links, `..`).
#[doc(hidden)]
pub fn sign_raw_for_tests(
    fragment: &Fragment,
    raw_entries: &[(String, u8, u32, Vec<u8>)],
    key: &SigningKey,
) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&MAGIC);
    body.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    body.extend_from_slice(
        &now_unix_s()
            .saturating_add(DEFAULT_VALIDITY_S)
            .to_le_bytes(),
    );
    body.extend_from_slice(&0u32.to_le_bytes());
    let fragment_bytes =
        bincode::serde::encode_to_vec(fragment, bincode::config::standard()).unwrap_or_default();
    body.extend_from_slice(&(fragment_bytes.len() as u32).to_le_bytes());
    body.extend_from_slice(&fragment_bytes);
    body.extend_from_slice(&(raw_entries.len() as u32).to_le_bytes());
    for (name, kind, mode, bytes) in raw_entries {
        body.extend_from_slice(&(name.len() as u16).to_le_bytes());
        body.extend_from_slice(name.as_bytes());
        body.push(*kind);
        body.extend_from_slice(&mode.to_le_bytes());
        body.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        body.extend_from_slice(bytes);
    }
    let digest: [u8; 32] = Sha256::digest(&body).into();
    body.extend_from_slice(key.verifying_key().as_bytes());
    body.extend_from_slice(&key.sign(&digest).to_bytes());
    body
}

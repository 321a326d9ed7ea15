//! The signed update bundle: one file per app version.
//!
//! Owns the byte format: its limits, entry kinds and entry names, and what a checked
//! bundle is ([`Bundle`], [`Entry`]). The parts live in one file each, none of which uses
//! another's private state:
//!
//! * [`fragment`]: the manifest fragment a bundle carries ([`Fragment`]), built from a
//!   deployment;
//! * [`write`](mod@write): the writer `takt ota sign` uses ([`sign`], [`sign_to`]);
//! * [`read`](mod@read): the bounded reader of hostile bytes ([`read()`] verifies,
//!   [`parse_unverified`] only looks);
//! * [`expiry`]: the `expires` instant as people write and read it.
//!
//! The keys a bundle is checked against ([`TrustedKeys`]) belong to [`keys`](super::keys)
//! and are re-exported here. This module must never write anything to disk or trust a
//! byte before the signature over it has been checked against a trusted key: [`read()`]
//! checks the signature first and parses afterwards.
//!
//! # Layout (all integers little-endian)
//!
//! ```text
//! magic            8 bytes   b"TAKTOTA\0"
//! format version   u32       FORMAT_VERSION (2)
//! expires          u64       seconds since 1970-01-01 UTC; refused at staging after it
//! key doc length   u32       0 (none) or <= keys::MAX_KEY_DOC_BYTES
//! key document     a signed key document (see `keys`), carried to the vehicle
//! fragment length  u32       <= MAX_FRAGMENT_BYTES
//! fragment         bincode 2 (standard config) of `Fragment`
//! entry count      u32       1..=MAX_ENTRIES; entry 0 is the app executable
//! entries          per entry: name length u16, name (UTF-8), kind u8 (0 = file,
//!                  1 = symbolic link, 2 = hard link; links are always refused,
//!                  3 = delta), mode u32 (permission bits only), then
//!                  for a file:  length u64, bytes
//!                  for a delta: base SHA-256 32 bytes, result SHA-256 32 bytes,
//!                               result length u64, patch length u64, patch
//!                               (bsdiff 4, see `delta`); only entry 0, the executable
//! signer           32 bytes  ed25519 public key
//! signature        64 bytes  ed25519 over SHA-256(every byte before `signer`)
//! ```
//!
//! A delta bundle carries its executable as a patch against the executable the vehicle has
//! installed; both hashes and the result length are in the signed part. It is still format
//! 2: every full bundle reads exactly as before, and a takt without delta support refuses a
//! delta bundle by its entry kind (3) before writing anything, so no version bump is
//! needed to keep old readers safe.

use std::fmt;

pub mod expiry;
pub mod fragment;
pub mod read;
pub mod write;

pub use super::keys::{generate_seed, public_key, signing_key, KeyError, TrustedKey, TrustedKeys};
pub use expiry::{format_unix_s, now_unix_s, parse_expires, parse_rfc3339_utc, ExpiryError};
pub use fragment::{
    Fragment, FragmentError, FragmentPort, FragmentTask, Layout, Layouts, PortDirection,
};
pub use read::{parse_unverified, read, verify, BundleReadError, Verified};
pub use write::{sign, sign_raw_for_tests, sign_to, sign_with, BundleWriteError, SignOptions};

/// The first bytes of every bundle.
pub const MAGIC: [u8; 8] = *b"TAKTOTA\0";
/// The one format version this reader understands. Format 1 had no expiry and no key
/// document; it is refused (a bundle that never expires is what a freeze attack replays).
pub const FORMAT_VERSION: u32 = 2;
/// How long a bundle is valid when its signer gives no `--expires`.
pub const DEFAULT_VALIDITY_S: u64 = 30 * 24 * 3600;
/// Largest bundle file read: 512 MiB.
pub const MAX_BUNDLE_BYTES: u64 = 512 << 20;
/// Largest manifest fragment: 64 KiB is room for thousands of tasks and ports.
pub const MAX_FRAGMENT_BYTES: u32 = 64 << 10;
/// Most entries (executable plus extra files) in one bundle.
pub const MAX_ENTRIES: u32 = 64;
pub use super::MAX_ENTRY_BYTES;
/// Longest entry name in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// Length of the signer key and signature at the end of the file.
pub const TRAILER_BYTES: usize = 32 + 64;

const KIND_FILE: u8 = 0;
const KIND_SYMLINK: u8 = 1;
const KIND_HARDLINK: u8 = 2;
const KIND_DELTA: u8 = 3;

/// A file carried by a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Relative path inside the slot, `/`-separated, checked by [`check_entry_name`].
    pub name: String,
    /// Permission bits (`0o755`); no setuid, setgid or sticky bit.
    pub mode: u32,
    pub bytes: Vec<u8>,
}

/// A bundle whose structure has been checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    pub fragment: Fragment,
    /// Entry 0 is the app executable. In a delta bundle its `bytes` are empty until
    /// [`Bundle::into_entries`] rebuilds them from the installed executable.
    pub entries: Vec<Entry>,
    /// `Some` for a delta bundle: the executable as a patch against the installed one.
    pub delta: Option<super::delta::Delta>,
    /// The key that signed it.
    pub signer: [u8; 32],
    /// SHA-256 of the signed part.
    pub digest: [u8; 32],
    /// After this instant (seconds since 1970-01-01 UTC) the bundle is refused.
    pub expires_unix_s: u64,
    /// The key document the bundle carries (raw; checked by [`verify`]).
    pub key_document: Option<Vec<u8>>,
}

impl Bundle {
    /// The entries to install. A full bundle's are its own; a delta bundle's executable is
    /// rebuilt from `installed_exe` (the bytes of the executable the vehicle runs), which
    /// must be the patch's base, and must come out with the signed result hash.
    /// `installed_exe` is called only for a delta bundle.
    pub fn into_entries(
        self,
        installed_exe: impl FnOnce() -> Result<Vec<u8>, String>,
    ) -> Result<Vec<Entry>, RebuildError> {
        let mut entries = self.entries;
        if let Some(delta) = self.delta {
            let base = installed_exe().map_err(RebuildError::Installed)?;
            let exe = entries.first_mut().ok_or(RebuildError::NoExecutable)?;
            exe.bytes = delta.apply(&base).map_err(RebuildError::Patch)?;
        }
        Ok(entries)
    }

    /// Bytes the entries take once installed (a delta's result length, not its patch's).
    pub fn installed_bytes(&self) -> u64 {
        let delta = self.delta.as_ref().map_or(0, |d| d.result_len);
        self.entries
            .iter()
            .map(|e| e.bytes.len() as u64)
            .sum::<u64>()
            + delta
    }
}

/// Why a delta bundle's executable could not be rebuilt ([`Bundle::into_entries`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RebuildError {
    /// The installed executable could not be read; the caller's words.
    Installed(String),
    /// A delta bundle without entry 0 (the reader never hands one out).
    NoExecutable,
    /// The patch does not apply, or its result is not the signed one.
    Patch(super::delta::DeltaError),
}

impl fmt::Display for RebuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RebuildError::Installed(why) => f.write_str(why),
            RebuildError::NoExecutable => {
                f.write_str("a delta bundle without its executable entry")
            }
            RebuildError::Patch(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RebuildError {}

/// Why an entry name is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameProblem {
    Empty,
    TooLong,
    Absolute,
    /// A `..` component: it would leave the slot.
    ParentComponent,
    /// `a//b`, a trailing `/` or a `.` component: one file must have one spelling.
    EmptyOrDotComponent,
    /// NUL or a backslash.
    ForbiddenCharacter,
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameProblem::Empty => "the name is empty",
            NameProblem::TooLong => "the name is longer than 255 bytes",
            NameProblem::Absolute => "absolute paths are not allowed",
            NameProblem::ParentComponent => "`..` components (path traversal) are not allowed",
            NameProblem::EmptyOrDotComponent => "empty and `.` components are not allowed",
            NameProblem::ForbiddenCharacter => "NUL and backslash are not allowed",
        })
    }
}

/// Checks that `name` stays inside the slot and has one spelling.
pub fn check_entry_name(name: &str) -> Result<(), NameProblem> {
    if name.is_empty() {
        return Err(NameProblem::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameProblem::TooLong);
    }
    if name.contains(['\0', '\\']) {
        return Err(NameProblem::ForbiddenCharacter);
    }
    if name.starts_with('/') {
        return Err(NameProblem::Absolute);
    }
    // `..` is checked over all components first, so `a//../b` names the traversal.
    if name.split('/').any(|c| c == "..") {
        return Err(NameProblem::ParentComponent);
    }
    if name.split('/').any(|c| c.is_empty() || c == ".") {
        return Err(NameProblem::EmptyOrDotComponent);
    }
    Ok(())
}

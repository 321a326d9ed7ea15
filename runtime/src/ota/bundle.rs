//! The signed update bundle: one file per app version.
//!
//! Owns the byte format, its writer ([`sign`], [`sign_to`]) and its bounded reader
//! ([`read`] verifies, [`parse_unverified`] only looks). It must never write anything to
//! disk or trust a byte before the signature over it has been checked against a trusted
//! key: [`read`] checks the signature first and parses afterwards.
//!
//! # Layout (all integers little-endian)
//!
//! ```text
//! magic            8 bytes   b"TAKTOTA\0"
//! format version   u32       FORMAT_VERSION
//! fragment length  u32       <= MAX_FRAGMENT_BYTES
//! fragment         bincode 2 (standard config) of `Fragment`
//! entry count      u32       1..=MAX_ENTRIES; entry 0 is the app executable
//! entries          per entry: name length u16, name (UTF-8), kind u8 (0 = file,
//!                  1 = symbolic link, 2 = hard link; links are always refused),
//!                  mode u32 (permission bits only), length u64, bytes
//! signer           32 bytes  ed25519 public key
//! signature        64 bytes  ed25519 over SHA-256(every byte before `signer`)
//! ```

use std::fmt;
use std::io::{self, Write};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::to_hex;

/// The first bytes of every bundle.
pub const MAGIC: [u8; 8] = *b"TAKTOTA\0";
/// The one format version this reader understands.
pub const FORMAT_VERSION: u32 = 1;
/// Largest bundle file read: 512 MiB.
pub const MAX_BUNDLE_BYTES: u64 = 512 << 20;
/// Largest manifest fragment: 64 KiB is room for thousands of tasks and ports.
pub const MAX_FRAGMENT_BYTES: u32 = 64 << 10;
/// Most entries (executable plus extra files) in one bundle.
pub const MAX_ENTRIES: u32 = 64;
/// Largest single entry: 256 MiB.
pub const MAX_ENTRY_BYTES: u64 = 256 << 20;
/// Longest entry name in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// Length of the signer key and signature at the end of the file.
pub const TRAILER_BYTES: usize = 32 + 64;

/// What a bundle says about the app version it carries: the part of the manifest the
/// supervisor re-checks against the running deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fragment {
    pub app: String,
    /// Monotonic version counter; anti-rollback compares this.
    pub version: u64,
    /// Free-form version for people, e.g. `1.2.0-gap18`.
    pub version_label: String,
    pub tasks: Vec<FragmentTask>,
    pub ports: Vec<FragmentPort>,
}

impl Fragment {
    /// The fragment of `app` as `d` deploys it: its tasks' timing and every port its tasks
    /// open, with the layout the linked `catalog` gives the channel's type.
    /// `layouts` gives the structure of the message types (the shipped executable's own
    /// declaration), so a refused update can name the field that differs.
    pub fn from_deployment(
        d: &crate::manifest::Deployment,
        catalog: &crate::manifest::Catalog,
        layouts: &Layouts,
        app: &str,
        version: u64,
        version_label: &str,
    ) -> Result<Fragment, FragmentError> {
        let app_id =
            d.apps
                .iter()
                .position(|a| a.name == app)
                .ok_or_else(|| FragmentError::UnknownApp {
                    app: app.to_string(),
                    known: d.apps.iter().map(|a| a.name.clone()).collect(),
                })?;
        let in_app = |t: usize| d.tasks[t].app == app_id;
        let tasks = d
            .tasks
            .iter()
            .filter(|t| t.app == app_id)
            .map(|t| FragmentTask {
                name: t.name.clone(),
                period_ns: t.period_ns,
                offset_ns: t.offset_ns,
                budget_ns: t.budget_ns,
                let_ns: t.let_ns,
                core: t.core as u64,
            })
            .collect();
        let mut ports = Vec::new();
        for ch in &d.channels {
            let mut directions = Vec::new();
            if in_app(ch.writer) {
                directions.push(PortDirection::Write);
            }
            if ch.readers.iter().any(|&r| in_app(r)) {
                directions.push(PortDirection::Read);
            }
            for direction in directions {
                let layout = catalog.types.get(ch.type_name.as_str()).ok_or_else(|| {
                    FragmentError::UnknownType {
                        topic: ch.topic.clone(),
                        type_name: ch.type_name.clone(),
                    }
                })?;
                ports.push(FragmentPort {
                    topic: ch.topic.clone(),
                    direction,
                    type_name: ch.type_name.clone(),
                    layout: Layout {
                        structure: layouts.get(ch.type_name.as_str()).cloned(),
                        ..Layout::from(*layout)
                    },
                });
            }
        }
        Ok(Fragment {
            app: app.to_string(),
            version,
            version_label: version_label.to_string(),
            tasks,
            ports,
        })
    }
}

/// Why a fragment could not be taken from a deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FragmentError {
    UnknownApp { app: String, known: Vec<String> },
    UnknownType { topic: String, type_name: String },
}

impl fmt::Display for FragmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FragmentError::UnknownApp { app, known } => write!(
                f,
                "app `{app}` is not in the manifest; its apps are: {}",
                known.join(", ")
            ),
            FragmentError::UnknownType { topic, type_name } => write!(
                f,
                "topic `{topic}`: type `{type_name}` is not linked into this binary, so its layout is unknown"
            ),
        }
    }
}

impl std::error::Error for FragmentError {}

/// One task of the app with the timing the new version asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentTask {
    pub name: String,
    pub period_ns: u64,
    pub offset_ns: u64,
    pub budget_ns: u64,
    pub let_ns: u64,
    pub core: u64,
}

/// Whether the app writes or reads a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortDirection {
    Write,
    Read,
}

/// One port the new version opens, with the layout of its message type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentPort {
    pub topic: String,
    pub direction: PortDirection,
    pub type_name: String,
    pub layout: Layout,
}

/// An owned copy of a [`Fingerprint`](crate::manifest::Fingerprint), as stored in a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub name: String,
    pub size: u64,
    pub align: u64,
    pub hash: u64,
    /// Field names, types and offsets (the structure `hash` is taken over).
    pub structure: Option<crate::port::layout::TypeLayout>,
}

impl From<crate::manifest::Fingerprint> for Layout {
    fn from(f: crate::manifest::Fingerprint) -> Self {
        Layout {
            name: f.name.to_string(),
            size: f.size as u64,
            align: f.align as u64,
            hash: f.hash,
            structure: None,
        }
    }
}

/// Message type name → its structural layout.
pub type Layouts = std::collections::BTreeMap<String, crate::port::layout::TypeLayout>;

impl Layout {
    /// Whether both describe the same type: name, size, alignment and structural hash (the
    /// hash covers the structure, which is carried only to explain a difference).
    pub fn same_type(&self, other: &Layout) -> bool {
        (&self.name, self.size, self.align, self.hash)
            == (&other.name, other.size, other.align, other.hash)
    }

    /// The first field that differs, when both sides carry their structure.
    pub fn difference(&self, other: &Layout) -> Option<crate::port::layout::LayoutDifference> {
        self.structure
            .as_ref()?
            .first_difference(other.structure.as_ref()?)
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (size {}, align {}, layout {:016x})",
            self.name, self.size, self.align, self.hash
        )
    }
}

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
    /// Entry 0 is the app executable.
    pub entries: Vec<Entry>,
    /// The key that signed it.
    pub signer: [u8; 32],
    /// SHA-256 of the signed part.
    pub digest: [u8; 32],
}

/// The integrator's trusted public keys.
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys {
    keys: Vec<VerifyingKey>,
}

impl TrustedKeys {
    pub fn new() -> Self {
        TrustedKeys::default()
    }

    /// Adds a 32-byte ed25519 public key; refuses bytes that are not a valid curve point.
    pub fn add(&mut self, public_key: &[u8; 32]) -> Result<(), KeyError> {
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| KeyError::NotAPublicKey {
            key: to_hex(public_key),
        })?;
        self.keys.push(key);
        Ok(())
    }

    /// Adds a key written as 64 hex digits.
    pub fn add_hex(&mut self, text: &str) -> Result<(), KeyError> {
        let bytes = super::from_hex::<32>(text).map_err(|reason| KeyError::BadHex { reason })?;
        self.add(&bytes)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn find(&self, signer: &[u8; 32]) -> Option<&VerifyingKey> {
        self.keys.iter().find(|k| k.as_bytes() == signer)
    }
}

/// A key that could not be taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyError {
    BadHex { reason: String },
    NotAPublicKey { key: String },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::BadHex { reason } => {
                write!(f, "not an ed25519 key in hex (64 hex digits): {reason}")
            }
            KeyError::NotAPublicKey { key } => {
                write!(f, "{key} is not a valid ed25519 public key")
            }
        }
    }
}

impl std::error::Error for KeyError {}

/// Makes a signing key from a 32-byte secret seed.
pub fn signing_key(seed: &[u8; 32]) -> SigningKey {
    SigningKey::from_bytes(seed)
}

/// Generates a new secret seed from the operating system's random source.
pub fn generate_seed() -> [u8; 32] {
    SigningKey::generate(&mut rand_core::OsRng).to_bytes()
}

/// The public key of a secret seed.
pub fn public_key(seed: &[u8; 32]) -> [u8; 32] {
    SigningKey::from_bytes(seed).verifying_key().to_bytes()
}

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

/// Builds and signs a bundle in memory.
pub fn sign(
    fragment: &Fragment,
    entries: &[Entry],
    key: &SigningKey,
) -> Result<Vec<u8>, BundleWriteError> {
    let mut out = Vec::new();
    sign_to(&mut out, fragment, entries, key, &mut |_| {})?;
    Ok(out)
}

/// Streams a signed bundle into `out`, calling `progress` with the bytes written so far,
/// so a caller can show progress for large executables.
pub fn sign_to(
    out: &mut dyn Write,
    fragment: &Fragment,
    entries: &[Entry],
    key: &SigningKey,
    progress: &mut dyn FnMut(u64),
) -> Result<(), BundleWriteError> {
    check_entries_for_writing(entries)?;
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
    // Bounded above, so the casts to the on-disk widths cannot truncate.
    w.put(&(fragment_bytes.len() as u32).to_le_bytes())?;
    w.put(&fragment_bytes)?;
    w.put(&(entries.len() as u32).to_le_bytes())?;
    for e in entries {
        w.put(&(e.name.len() as u16).to_le_bytes())?;
        w.put(e.name.as_bytes())?;
        w.put(&[KIND_FILE])?;
        w.put(&e.mode.to_le_bytes())?;
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

const KIND_FILE: u8 = 0;
const KIND_SYMLINK: u8 = 1;
const KIND_HARDLINK: u8 = 2;

/// Why a bundle was refused. Every variant is one reason; offsets are byte offsets into
/// the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BundleReadError {
    TooLarge {
        len: u64,
    },
    BadMagic,
    UnsupportedFormat {
        found: u32,
    },
    /// The file ended while reading `what` at `offset`.
    Truncated {
        what: &'static str,
        offset: u64,
    },
    UntrustedKey {
        signer: String,
    },
    NoTrustedKeys,
    BadSignature {
        signer: String,
    },
    FragmentTooLarge {
        len: u32,
    },
    BadFragment {
        reason: String,
    },
    NoEntries,
    TooManyEntries {
        count: u32,
    },
    BadEntryName {
        name: String,
        problem: NameProblem,
    },
    EntryNameNotUtf8 {
        offset: u64,
    },
    LinkEntry {
        name: String,
    },
    UnknownEntryKind {
        name: String,
        kind: u8,
    },
    BadMode {
        name: String,
        mode: u32,
    },
    EntryTooLarge {
        name: String,
        len: u64,
    },
    DuplicateEntry {
        name: String,
    },
    TrailingBytes {
        offset: u64,
        len: u64,
    },
}

impl fmt::Display for BundleReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use BundleReadError as E;
        match self {
            E::TooLarge { len } => write!(
                f,
                "the bundle is {len} bytes; at most {MAX_BUNDLE_BYTES} bytes are read"
            ),
            E::BadMagic => write!(f, "not a takt bundle (bad magic; expected `TAKTOTA\\0`)"),
            E::UnsupportedFormat { found } => write!(
                f,
                "bundle format version {found} is not supported; this takt reads version {FORMAT_VERSION}"
            ),
            E::Truncated { what, offset } => {
                write!(f, "truncated bundle: the file ends inside {what} at byte {offset}")
            }
            E::UntrustedKey { signer } => write!(
                f,
                "signed by key {signer}, which is not among the trusted keys"
            ),
            E::NoTrustedKeys => write!(
                f,
                "no trusted keys are given; no bundle can be verified"
            ),
            E::BadSignature { signer } => write!(
                f,
                "bad signature: the content does not match what key {signer} signed (corrupted or altered)"
            ),
            E::FragmentTooLarge { len } => write!(
                f,
                "the manifest fragment is {len} bytes; at most {MAX_FRAGMENT_BYTES} are allowed"
            ),
            E::BadFragment { reason } => write!(f, "bad manifest fragment: {reason}"),
            E::NoEntries => write!(f, "the bundle has no entries; the first must be the executable"),
            E::TooManyEntries { count } => {
                write!(f, "{count} entries; at most {MAX_ENTRIES} are allowed")
            }
            E::BadEntryName { name, problem } => write!(f, "entry `{name}`: {problem}"),
            E::EntryNameNotUtf8 { offset } => {
                write!(f, "the entry name at byte {offset} is not UTF-8")
            }
            E::LinkEntry { name } => write!(
                f,
                "entry `{name}` is a link; only regular files are allowed"
            ),
            E::UnknownEntryKind { name, kind } => write!(
                f,
                "entry `{name}` has kind {kind}; only 0 (regular file) is allowed"
            ),
            E::BadMode { name, mode } => write!(
                f,
                "entry `{name}`: mode {mode:o} has bits beyond 0o777; only permission bits are allowed"
            ),
            E::EntryTooLarge { name, len } => write!(
                f,
                "entry `{name}` is {len} bytes; at most {MAX_ENTRY_BYTES} bytes are allowed"
            ),
            E::DuplicateEntry { name } => {
                write!(f, "entry `{name}` appears twice; names must be unique")
            }
            E::TrailingBytes { offset, len } => write!(
                f,
                "{len} unexpected bytes at byte {offset} after the last entry"
            ),
        }
    }
}

impl std::error::Error for BundleReadError {}

/// Checks size, magic, format version and the signature against `trusted`, then parses.
///
/// Nothing past the header is interpreted before the signature is known to be good.
pub fn read(bytes: &[u8], trusted: &TrustedKeys) -> Result<Bundle, BundleReadError> {
    check_header(bytes)?;
    if trusted.is_empty() {
        return Err(BundleReadError::NoTrustedKeys);
    }
    let (signed, signer, signature) = split_trailer(bytes)?;
    let key = trusted
        .find(&signer)
        .ok_or_else(|| BundleReadError::UntrustedKey {
            signer: to_hex(&signer),
        })?;
    let digest: [u8; 32] = Sha256::digest(signed).into();
    key.verify_strict(&digest, &Signature::from_bytes(&signature))
        .map_err(|_| BundleReadError::BadSignature {
            signer: to_hex(&signer),
        })?;
    parse_signed_part(signed, signer, digest)
}

/// Parses a bundle without checking its signature, for `takt ota inspect` without keys.
/// The result must not be staged.
pub fn parse_unverified(bytes: &[u8]) -> Result<Bundle, BundleReadError> {
    check_header(bytes)?;
    let (signed, signer, _) = split_trailer(bytes)?;
    let digest: [u8; 32] = Sha256::digest(signed).into();
    parse_signed_part(signed, signer, digest)
}

fn check_header(bytes: &[u8]) -> Result<(), BundleReadError> {
    if bytes.len() as u64 > MAX_BUNDLE_BYTES {
        return Err(BundleReadError::TooLarge {
            len: bytes.len() as u64,
        });
    }
    let mut c = Cursor { bytes, pos: 0 };
    let magic = c.take(MAGIC.len(), "the magic")?;
    if magic != MAGIC {
        return Err(BundleReadError::BadMagic);
    }
    let version = c.u32("the format version")?;
    if version != FORMAT_VERSION {
        return Err(BundleReadError::UnsupportedFormat { found: version });
    }
    Ok(())
}

type Trailer<'a> = (&'a [u8], [u8; 32], [u8; 64]);

fn split_trailer(bytes: &[u8]) -> Result<Trailer<'_>, BundleReadError> {
    // The smallest signed part is the header, the fragment length and the entry count.
    let min_signed = MAGIC.len() + 4 + 4 + 4;
    if bytes.len() < min_signed + TRAILER_BYTES {
        return Err(BundleReadError::Truncated {
            what: "the signature",
            offset: bytes.len() as u64,
        });
    }
    let (signed, trailer) = bytes.split_at(bytes.len() - TRAILER_BYTES);
    let mut signer = [0u8; 32];
    signer.copy_from_slice(&trailer[..32]);
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&trailer[32..]);
    Ok((signed, signer, signature))
}

fn parse_signed_part(
    signed: &[u8],
    signer: [u8; 32],
    digest: [u8; 32],
) -> Result<Bundle, BundleReadError> {
    let mut c = Cursor {
        bytes: signed,
        pos: MAGIC.len() + 4,
    };
    let fragment_len = c.u32("the fragment length")?;
    if fragment_len > MAX_FRAGMENT_BYTES {
        return Err(BundleReadError::FragmentTooLarge { len: fragment_len });
    }
    let fragment_bytes = c.take(fragment_len as usize, "the manifest fragment")?;
    let (fragment, used): (Fragment, usize) = bincode::serde::decode_from_slice(
        fragment_bytes,
        bincode::config::standard().with_limit::<{ MAX_FRAGMENT_BYTES as usize }>(),
    )
    .map_err(|e| BundleReadError::BadFragment {
        reason: e.to_string(),
    })?;
    if used != fragment_bytes.len() {
        return Err(BundleReadError::BadFragment {
            reason: format!(
                "{} bytes left over after the fragment",
                fragment_bytes.len() - used
            ),
        });
    }
    if fragment.app.is_empty() {
        return Err(BundleReadError::BadFragment {
            reason: "the app name is empty".to_string(),
        });
    }
    let count = c.u32("the entry count")?;
    if count == 0 {
        return Err(BundleReadError::NoEntries);
    }
    if count > MAX_ENTRIES {
        return Err(BundleReadError::TooManyEntries { count });
    }
    let mut entries: Vec<Entry> = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let name_len = c.u16("an entry name length")?;
        let name_at = c.pos as u64;
        let name_bytes = c.take(usize::from(name_len), "an entry name")?;
        let name = std::str::from_utf8(name_bytes)
            .map_err(|_| BundleReadError::EntryNameNotUtf8 { offset: name_at })?
            .to_string();
        check_entry_name(&name).map_err(|problem| BundleReadError::BadEntryName {
            name: name.clone(),
            problem,
        })?;
        let kind = c.take(1, "an entry kind")?[0];
        match kind {
            KIND_FILE => {}
            KIND_SYMLINK | KIND_HARDLINK => return Err(BundleReadError::LinkEntry { name }),
            other => return Err(BundleReadError::UnknownEntryKind { name, kind: other }),
        }
        let mode = c.u32("an entry mode")?;
        if mode & !0o777 != 0 {
            return Err(BundleReadError::BadMode { name, mode });
        }
        let len = c.u64("an entry length")?;
        if len > MAX_ENTRY_BYTES {
            return Err(BundleReadError::EntryTooLarge { name, len });
        }
        if entries.iter().any(|e| e.name == name) {
            return Err(BundleReadError::DuplicateEntry { name });
        }
        // `len <= MAX_ENTRY_BYTES` fits in usize on every supported target.
        let bytes = c.take(len as usize, "an entry's content")?.to_vec();
        entries.push(Entry { name, mode, bytes });
    }
    if c.pos != signed.len() {
        return Err(BundleReadError::TrailingBytes {
            offset: c.pos as u64,
            len: (signed.len() - c.pos) as u64,
        });
    }
    Ok(Bundle {
        fragment,
        entries,
        signer,
        digest,
    })
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], BundleReadError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(BundleReadError::Truncated {
                what,
                offset: self.bytes.len() as u64,
            })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, BundleReadError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, BundleReadError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, BundleReadError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_le_bytes(a))
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

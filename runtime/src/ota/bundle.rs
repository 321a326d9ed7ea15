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
use std::io::{self, Write};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::to_hex;

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
    /// open. A port is what the task's implementation in `catalog` (the shipped executable's
    /// own declaration) declares, moved to the topic the task instance maps it to
    /// (`[task.topics]`), with the type and layout that declaration gives it; so staging
    /// compares what the shipped code opens, on the topics it opens them, with the running
    /// peers.
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
        // The type task `id`'s implementation declares for its port on `topic` (after the
        // instance's mapping) in `direction`.
        let declared_type = |id: usize, topic: &str, direction| -> Result<&str, FragmentError> {
            let spec = &d.tasks[id];
            let sig = catalog.tasks.get(&spec.implementation).ok_or_else(|| {
                FragmentError::MissingImplementation {
                    task: spec.name.clone(),
                    implementation: spec.implementation.clone(),
                }
            })?;
            let list = match direction {
                PortDirection::Write => &sig.writes,
                PortDirection::Read => &sig.reads,
            };
            list.iter()
                .find(|(declared, _)| spec.topic(declared) == topic)
                .map(|(_, ty)| *ty)
                .ok_or_else(|| FragmentError::PortNotDeclared {
                    task: spec.name.clone(),
                    implementation: spec.implementation.clone(),
                    topic: topic.to_string(),
                    direction,
                })
        };
        let mut ports: Vec<FragmentPort> = Vec::new();
        for ch in &d.channels {
            let mut roles: Vec<(usize, PortDirection)> = Vec::new();
            if in_app(ch.writer) {
                roles.push((ch.writer, PortDirection::Write));
            }
            for &r in ch.readers.iter().filter(|&&r| in_app(r)) {
                roles.push((r, PortDirection::Read));
            }
            for (id, direction) in roles {
                let type_name = declared_type(id, &ch.topic, direction)?;
                // Several readers of one app with one type are one port.
                if ports.iter().any(|p| {
                    p.topic == ch.topic && p.direction == direction && p.type_name == type_name
                }) {
                    continue;
                }
                let layout =
                    catalog
                        .types
                        .get(type_name)
                        .ok_or_else(|| FragmentError::UnknownType {
                            topic: ch.topic.clone(),
                            type_name: type_name.to_string(),
                        })?;
                ports.push(FragmentPort {
                    topic: ch.topic.clone(),
                    direction,
                    type_name: type_name.to_string(),
                    layout: Layout {
                        structure: layouts.get(type_name).cloned(),
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
    UnknownApp {
        app: String,
        known: Vec<String>,
    },
    UnknownType {
        topic: String,
        type_name: String,
    },
    /// The catalog (the shipped executable's) does not implement a task of the app.
    MissingImplementation {
        task: String,
        implementation: String,
    },
    /// The task's implementation declares no port that the instance maps onto `topic`,
    /// though the deployment connects the task there.
    PortNotDeclared {
        task: String,
        implementation: String,
        topic: String,
        direction: PortDirection,
    },
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
            FragmentError::MissingImplementation {
                task,
                implementation,
            } => write!(
                f,
                "task `{task}` runs task implementation `{implementation}`, which the executable does not implement"
            ),
            FragmentError::PortNotDeclared {
                task,
                implementation,
                topic,
                direction,
            } => write!(
                f,
                "task `{task}` {} topic `{topic}` in the deployment, but its implementation `{implementation}` in the executable declares no such port (after the task's [task.topics])",
                match direction {
                    PortDirection::Write => "writes",
                    PortDirection::Read => "reads",
                }
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
    ) -> Result<Vec<Entry>, String> {
        let mut entries = self.entries;
        if let Some(delta) = self.delta {
            let base = installed_exe()?;
            let exe = entries
                .first_mut()
                .ok_or("a delta bundle without its executable entry")?;
            exe.bytes = delta.apply(&base).map_err(|e| e.to_string())?;
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

/// One trusted signing key and the apps it may sign (`None`: every app).
#[derive(Clone, Debug)]
pub struct TrustedKey {
    pub key: VerifyingKey,
    pub apps: Option<Vec<String>>,
}

impl TrustedKey {
    pub fn may_sign(&self, app: &str) -> bool {
        self.apps
            .as_ref()
            .is_none_or(|a| a.iter().any(|x| x == app))
    }
}

/// The integrator's trusted public keys: signing keys with their scope, root keys that
/// sign key documents, and (after a key document) revoked keys.
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys {
    keys: Vec<TrustedKey>,
    roots: Vec<[u8; 32]>,
    revoked: Vec<[u8; 32]>,
    /// The version of the key document applied (0: the manifest's keys alone).
    doc_version: u64,
}

impl TrustedKeys {
    pub fn new() -> Self {
        TrustedKeys::default()
    }

    /// Adds a 32-byte ed25519 public key; refuses bytes that are not a valid curve point.
    pub fn add(&mut self, public_key: &[u8; 32]) -> Result<(), KeyError> {
        self.add_scoped(public_key, None)
    }

    /// Adds a key that may sign only `apps` (`None`: every app). A key added again takes
    /// the new scope.
    pub fn add_scoped(
        &mut self,
        public_key: &[u8; 32],
        apps: Option<Vec<String>>,
    ) -> Result<(), KeyError> {
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| KeyError::NotAPublicKey {
            key: to_hex(public_key),
        })?;
        self.keys.retain(|k| k.key.as_bytes() != public_key);
        self.keys.push(TrustedKey { key, apps });
        Ok(())
    }

    /// Adds a root key: it signs key documents, never bundles.
    pub fn add_root(&mut self, public_key: &[u8; 32]) -> Result<(), KeyError> {
        VerifyingKey::from_bytes(public_key).map_err(|_| KeyError::NotAPublicKey {
            key: to_hex(public_key),
        })?;
        if !self.roots.contains(public_key) {
            self.roots.push(*public_key);
        }
        Ok(())
    }

    pub fn roots(&self) -> &[[u8; 32]] {
        &self.roots
    }

    pub fn keys(&self) -> &[TrustedKey] {
        &self.keys
    }

    pub fn revoked(&self) -> &[[u8; 32]] {
        &self.revoked
    }

    pub fn doc_version(&self) -> u64 {
        self.doc_version
    }

    /// The keys after `doc`: its keys added (or re-scoped), its revoked keys removed.
    pub fn apply(&self, doc: &super::keys::KeyDocument) -> TrustedKeys {
        let mut t = self.clone();
        for k in &doc.body.keys {
            // `keys::parse` checked every key is a usable curve point.
            let _ = t.add_scoped(&k.public, k.apps.clone());
        }
        t.keys
            .retain(|k| !doc.body.revoked.contains(k.key.as_bytes()));
        t.revoked.clone_from(&doc.body.revoked);
        t.doc_version = doc.body.version;
        t
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

    pub fn find(&self, signer: &[u8; 32]) -> Option<&TrustedKey> {
        self.keys.iter().find(|k| k.key.as_bytes() == signer)
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

/// What goes into a bundle's signed header besides the fragment and the entries.
#[derive(Clone, Debug, Default)]
pub struct SignOptions {
    /// Seconds since 1970-01-01 UTC; `None`: [`DEFAULT_VALIDITY_S`] from now.
    pub expires_unix_s: Option<u64>,
    /// A signed key document to carry (from `takt ota keys sign`).
    pub key_document: Option<Vec<u8>>,
    /// Ship entry 0 (the executable) as this patch instead of its bytes: a delta bundle.
    /// The delta's result must be entry 0's bytes ([`super::delta::Delta::make`]).
    pub delta: Option<super::delta::Delta>,
}

/// Seconds since 1970-01-01 UTC now (0 if the clock is before 1970).
pub fn now_unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
        super::keys::parse_unverified(doc)
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

const KIND_FILE: u8 = 0;
const KIND_SYMLINK: u8 = 1;
const KIND_HARDLINK: u8 = 2;
const KIND_DELTA: u8 = 3;

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
    /// A delta entry other than entry 0: only the executable may be a delta.
    DeltaNotExecutable {
        name: String,
    },
    TrailingBytes {
        offset: u64,
        len: u64,
    },
    /// Past its `expires` instant (a freeze attack replays an old bundle).
    Expired {
        expires_unix_s: u64,
        now_unix_s: u64,
    },
    /// The signer may not sign this app.
    OutOfScope {
        signer: String,
        app: String,
        allowed: Vec<String>,
    },
    /// The signer was revoked by a key document.
    Revoked {
        signer: String,
        doc_version: u64,
    },
    KeyDocumentTooLarge {
        len: u32,
    },
    BadKeyDocument {
        reason: String,
    },
    /// The carried key document is older than the one the vehicle has.
    OldKeyDocument {
        found: u64,
        installed: u64,
    },
    /// Another document with the installed version: one version, one document.
    ConflictingKeyDocument {
        version: u64,
    },
}

/// An instant in seconds since 1970 as RFC 3339 UTC (`2026-12-03T09:24:29Z`).
pub fn format_unix_s(t: u64) -> String {
    let days = t / 86_400;
    let rem = t % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339 in UTC; `+00:00` also taken) to seconds since
/// 1970. Returns what is wrong in words.
pub fn parse_rfc3339_utc(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t
        .strip_suffix('Z')
        .or_else(|| t.strip_suffix("+00:00"))
        .ok_or_else(|| {
            format!("`{text}`: give a UTC time ending in `Z`, e.g. 2027-01-31T00:00:00Z")
        })?;
    let b = t.as_bytes();
    let shape_ok = b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T' || *c == b't' || *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(format!("`{text}` is not YYYY-MM-DDTHH:MM:SSZ"));
    }
    let num = |r: std::ops::Range<usize>| t[r].parse::<u32>().unwrap_or(u32::MAX);
    let (y, mo, d, h, mi, s) = (
        num(0..4),
        num(5..7),
        num(8..10),
        num(11..13),
        num(14..16),
        num(17..19),
    );
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || d == 0
        || d > month_days[(mo as usize).saturating_sub(1).min(11)]
        || h > 23
        || mi > 59
        || s > 59
    {
        return Err(format!(
            "`{text}`: no such date and time (from 1970 on, UTC)"
        ));
    }
    let days = days_from_civil(i64::from(y), mo, d);
    Ok(days as u64 * 86_400 + u64::from(h) * 3600 + u64::from(mi) * 60 + u64::from(s))
}

/// An expiry as `takt ota sign --expires` takes it: a duration from `now_unix_s` with a
/// unit of s, m, h or d (`30d`), or a UTC time (`2027-01-31T00:00:00Z`). Refuses an
/// instant that is not in the future.
pub fn parse_expires(text: &str, now_unix_s: u64) -> Result<u64, String> {
    let t = text.trim();
    let at = if t.contains('-') || t.contains(':') {
        parse_rfc3339_utc(t)?
    } else {
        let split = t
            .find(|c: char| !c.is_ascii_digit())
            .filter(|&i| i > 0)
            .ok_or_else(|| {
                format!("`{text}`: give a duration with a unit (s, m, h, d; e.g. 30d) or a UTC time (2027-01-31T00:00:00Z)")
            })?;
        let (digits, unit) = t.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}`: the number is too large"))?;
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => {
                return Err(format!(
                    "`{text}` has unit `{unit}`; allowed: s, m, h, d (e.g. 30d), or a UTC time"
                ))
            }
        };
        n.checked_mul(scale)
            .and_then(|d| now_unix_s.checked_add(d))
            .ok_or_else(|| format!("`{text}` is too far in the future"))?
    };
    if at <= now_unix_s {
        return Err(format!(
            "`{text}` ({}) is not in the future (now {}); a bundle that is already expired would be refused everywhere",
            format_unix_s(at),
            format_unix_s(now_unix_s)
        ));
    }
    Ok(at)
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
            E::DeltaNotExecutable { name } => write!(
                f,
                "entry `{name}` is a delta, but only the first entry (the executable) may be one"
            ),
            E::TrailingBytes { offset, len } => write!(
                f,
                "{len} unexpected bytes at byte {offset} after the last entry"
            ),
            E::Expired {
                expires_unix_s,
                now_unix_s,
            } => write!(
                f,
                "the bundle expired at {} (it is now {}); an expired bundle is never staged: ask for a freshly signed one (`takt ota sign --expires`)",
                format_unix_s(*expires_unix_s),
                format_unix_s(*now_unix_s)
            ),
            E::OutOfScope {
                signer,
                app,
                allowed,
            } => write!(
                f,
                "key {signer} may not sign app `{app}`: its scope is {}",
                if allowed.is_empty() {
                    "no app".to_string()
                } else {
                    allowed
                        .iter()
                        .map(|a| format!("`{a}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            E::Revoked {
                signer,
                doc_version,
            } => write!(
                f,
                "key {signer} was revoked by key document version {doc_version}; its bundles are refused"
            ),
            E::KeyDocumentTooLarge { len } => write!(
                f,
                "the carried key document is {len} bytes; at most {} are allowed",
                super::keys::MAX_KEY_DOC_BYTES
            ),
            E::BadKeyDocument { reason } => write!(f, "the carried key document: {reason}"),
            E::OldKeyDocument { found, installed } => write!(
                f,
                "the carried key document has version {found}, older than the installed version {installed}; key documents only move forward"
            ),
            E::ConflictingKeyDocument { version } => write!(
                f,
                "the carried key document has version {version}, the installed one's, but different content; one version, one document"
            ),
        }
    }
}

impl std::error::Error for BundleReadError {}

/// Checks size, magic, format version and the signature against `trusted`, then parses;
/// then the signer's scope and the expiry against the system clock. No key document is
/// installed: a carried one is applied if a root key signed it.
///
/// Nothing past the header is interpreted before the signature is known to be good.
pub fn read(bytes: &[u8], trusted: &TrustedKeys) -> Result<Bundle, BundleReadError> {
    verify(bytes, trusted, None, now_unix_s()).map(|v| v.bundle)
}

/// A verified bundle and, when it carried a key document newer than the installed one,
/// that document (the caller installs it once the bundle is accepted).
#[derive(Clone, Debug)]
pub struct Verified {
    pub bundle: Bundle,
    pub new_key_document: Option<super::keys::KeyDocument>,
    /// The keys the bundle was checked against (the manifest's with every document).
    pub effective: TrustedKeys,
}

/// Verifies a bundle against the manifest's keys `trusted`, the vehicle's `installed` key
/// document and the time `now_unix_s`: the carried key document (root-signed, not older
/// than the installed one), the signature (a trusted, unrevoked key), then the structure,
/// the signer's scope and the expiry.
pub fn verify(
    bytes: &[u8],
    trusted: &TrustedKeys,
    installed: Option<&super::keys::KeyDocument>,
    now_unix_s: u64,
) -> Result<Verified, BundleReadError> {
    check_header(bytes)?;
    let mut effective = match installed {
        Some(doc) => trusted.apply(doc),
        None => trusted.clone(),
    };
    let mut new_key_document = None;
    // The key document is checked on its own (its root signature) before the bundle's
    // signature, because it may be what makes the bundle's signer trusted.
    if let Some(doc_bytes) = carried_key_document(bytes)? {
        let doc = super::keys::parse(doc_bytes, trusted.roots()).map_err(|e| {
            BundleReadError::BadKeyDocument {
                reason: e.to_string(),
            }
        })?;
        let installed_version = installed.map_or(0, |d| d.body.version);
        if doc.body.version < installed_version {
            return Err(BundleReadError::OldKeyDocument {
                found: doc.body.version,
                installed: installed_version,
            });
        }
        match installed {
            Some(i) if i.body.version == doc.body.version => {
                if i.body != doc.body {
                    return Err(BundleReadError::ConflictingKeyDocument {
                        version: doc.body.version,
                    });
                }
            }
            _ => {
                effective = trusted.apply(&doc);
                new_key_document = Some(doc);
            }
        }
    }
    let (signed, signer, signature) = split_trailer(bytes)?;
    if effective.revoked.contains(&signer) {
        return Err(BundleReadError::Revoked {
            signer: to_hex(&signer),
            doc_version: effective.doc_version,
        });
    }
    if effective.is_empty() {
        return Err(BundleReadError::NoTrustedKeys);
    }
    let key = effective
        .find(&signer)
        .ok_or_else(|| BundleReadError::UntrustedKey {
            signer: to_hex(&signer),
        })?;
    let digest: [u8; 32] = Sha256::digest(signed).into();
    key.key
        .verify_strict(&digest, &Signature::from_bytes(&signature))
        .map_err(|_| BundleReadError::BadSignature {
            signer: to_hex(&signer),
        })?;
    let bundle = parse_signed_part(signed, signer, digest)?;
    if !key.may_sign(&bundle.fragment.app) {
        return Err(BundleReadError::OutOfScope {
            signer: to_hex(&signer),
            app: bundle.fragment.app.clone(),
            allowed: key.apps.clone().unwrap_or_default(),
        });
    }
    if now_unix_s > bundle.expires_unix_s {
        return Err(BundleReadError::Expired {
            expires_unix_s: bundle.expires_unix_s,
            now_unix_s,
        });
    }
    Ok(Verified {
        bundle,
        new_key_document,
        effective,
    })
}

/// The key document bytes in the (not yet verified) header, bounded.
fn carried_key_document(bytes: &[u8]) -> Result<Option<&[u8]>, BundleReadError> {
    let mut c = Cursor {
        bytes,
        pos: MAGIC.len() + 4,
    };
    c.u64("the expiry")?;
    let len = c.u32("the key document length")?;
    if len > super::keys::MAX_KEY_DOC_BYTES {
        return Err(BundleReadError::KeyDocumentTooLarge { len });
    }
    if len == 0 {
        return Ok(None);
    }
    // Never into the trailer: the signer and signature are not part of the document.
    let limit = bytes.len().saturating_sub(TRAILER_BYTES);
    let mut c = Cursor {
        bytes: &bytes[..limit],
        pos: c.pos,
    };
    Ok(Some(c.take(len as usize, "the key document")?))
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
    // The smallest signed part is the header (magic, format, expiry, key document
    // length), the fragment length and the entry count.
    let min_signed = MAGIC.len() + 4 + 8 + 4 + 4 + 4;
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
    let expires_unix_s = c.u64("the expiry")?;
    let key_doc_len = c.u32("the key document length")?;
    if key_doc_len > super::keys::MAX_KEY_DOC_BYTES {
        return Err(BundleReadError::KeyDocumentTooLarge { len: key_doc_len });
    }
    let key_document = match key_doc_len {
        0 => None,
        n => Some(c.take(n as usize, "the key document")?.to_vec()),
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
    let mut delta = None;
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
            KIND_DELTA if entries.is_empty() => {}
            KIND_DELTA => return Err(BundleReadError::DeltaNotExecutable { name }),
            KIND_SYMLINK | KIND_HARDLINK => return Err(BundleReadError::LinkEntry { name }),
            other => return Err(BundleReadError::UnknownEntryKind { name, kind: other }),
        }
        let mode = c.u32("an entry mode")?;
        if mode & !0o777 != 0 {
            return Err(BundleReadError::BadMode { name, mode });
        }
        if kind == KIND_DELTA {
            let mut base_sha256 = [0u8; 32];
            base_sha256.copy_from_slice(c.take(32, "a delta's base hash")?);
            let mut result_sha256 = [0u8; 32];
            result_sha256.copy_from_slice(c.take(32, "a delta's result hash")?);
            let result_len = c.u64("a delta's result length")?;
            if result_len > MAX_ENTRY_BYTES {
                return Err(BundleReadError::EntryTooLarge {
                    name,
                    len: result_len,
                });
            }
            let patch_len = c.u64("a delta's patch length")?;
            if patch_len > MAX_ENTRY_BYTES {
                return Err(BundleReadError::EntryTooLarge {
                    name,
                    len: patch_len,
                });
            }
            // `patch_len <= MAX_ENTRY_BYTES` fits in usize on every supported target.
            let patch = c.take(patch_len as usize, "a delta's patch")?.to_vec();
            delta = Some(super::delta::Delta {
                base_sha256,
                result_sha256,
                result_len,
                patch,
            });
            entries.push(Entry {
                name,
                mode,
                bytes: Vec::new(),
            });
            continue;
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
        delta,
        signer,
        digest,
        expires_unix_s,
        key_document,
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

//! The bounded reader of bundles: the one place hostile bytes are parsed.
//!
//! Owns the checks, in order: size, magic and format version, the carried key document
//! (root-signed, not older than the installed one), the signature (a trusted, unrevoked
//! key), then the structure within every limit, the signer's scope and the expiry. It must
//! never interpret a byte past the header before the signature over it is known to be
//! good, never allocate more than a checked length, and never write anything.

use std::fmt;

use ed25519_dalek::Signature;
use sha2::{Digest, Sha256};

use super::expiry::{format_unix_s, now_unix_s};
use super::fragment::Fragment;
use super::{
    check_entry_name, Bundle, Entry, NameProblem, FORMAT_VERSION, KIND_DELTA, KIND_FILE,
    KIND_HARDLINK, KIND_SYMLINK, MAGIC, MAX_BUNDLE_BYTES, MAX_ENTRIES, MAX_ENTRY_BYTES,
    MAX_FRAGMENT_BYTES, TRAILER_BYTES,
};
use crate::ota::keys::{self, TrustedKeys};
use crate::ota::to_hex;

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
                keys::MAX_KEY_DOC_BYTES
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
    pub new_key_document: Option<keys::KeyDocument>,
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
    installed: Option<&keys::KeyDocument>,
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
        let doc = keys::parse(doc_bytes, trusted.roots()).map_err(|e| {
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
    if effective.revoked().contains(&signer) {
        return Err(BundleReadError::Revoked {
            signer: to_hex(&signer),
            doc_version: effective.doc_version(),
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
    if len > keys::MAX_KEY_DOC_BYTES {
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
    if key_doc_len > keys::MAX_KEY_DOC_BYTES {
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
            delta = Some(crate::ota::delta::Delta {
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

//! The keys bundles are signed with, and signed key documents: how the set of
//! bundle-signing keys changes on a vehicle without editing its manifest (rotation,
//! revocation, per-app scope).
//!
//! Owns the trusted key set ([`TrustedKeys`]: the manifest's keys with every document
//! applied), the making of signing keys from seeds, the key document's byte format, its
//! signature check against the manifest's root keys (`[ota] root_keys`), and its durable
//! copy in the state directory. It must never decide whether a bundle may be staged:
//! [`bundle::verify`](super::bundle::verify) applies the document to the manifest's keys
//! and checks the bundle against the result.
//!
//! # The trust model in one paragraph
//!
//! The manifest names root keys (which sign key documents only) and signing keys (which
//! sign bundles), each signing key optionally limited to some apps. A key document,
//! signed by a root key, carries a version that only increases, signing keys to add (or
//! re-scope), and keys to revoke. The newest document a vehicle has seen is kept in its
//! state directory (two copies, each authenticated by its own root signature); an older
//! document is refused, so a revocation cannot be undone by replaying the document before
//! it. A document reaches a vehicle inside a bundle (`takt ota sign --key-doc`) or on its
//! own (`takt ota keys install`). Bundles expire (`expires`, inside the signed part), so a
//! vehicle cut off from updates cannot be fed an old, never-seen version forever (a freeze
//! attack) once it is past its date.
//!
//! # Layout (little-endian)
//!
//! ```text
//! magic        8 bytes  b"TAKTKEYS"
//! format       u32      1
//! body length  u32      <= MAX_KEY_DOC_BYTES
//! body         bincode 2 (standard) of `KeyDocumentBody`
//! signer       32 bytes ed25519 public key (a root key)
//! signature    64 bytes ed25519 over SHA-256(every byte before `signer`)
//! ```

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::storage::{replace_atomically, Storage};
use super::to_hex;

const MAGIC: [u8; 8] = *b"TAKTKEYS";
const FORMAT: u32 = 1;
/// Largest key document: room for hundreds of keys with their scopes.
pub const MAX_KEY_DOC_BYTES: u32 = 64 << 10;
/// Most keys (added plus revoked) in one document.
pub const MAX_DOC_KEYS: usize = 256;
/// Most apps in one key's scope.
pub const MAX_SCOPE_APPS: usize = 256;
const TRAILER: usize = 32 + 64;
/// The two copies of the installed document, in the state directory.
pub const COPIES: [&str; 2] = [".trust/keys.1", ".trust/keys.2"];
const DIR: &str = ".trust";

/// A signing key a document adds, with the apps it may sign (`None`: every app).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocKey {
    pub public: [u8; 32],
    pub apps: Option<Vec<String>>,
}

/// What a key document says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDocumentBody {
    /// Only increases: a vehicle refuses a document older than the one it has.
    pub version: u64,
    pub keys: Vec<DocKey>,
    pub revoked: Vec<[u8; 32]>,
}

/// A key document whose structure (and, from [`parse`], root signature) is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDocument {
    pub body: KeyDocumentBody,
    /// The root key that signed it.
    pub signer: [u8; 32],
    /// The whole file, as persisted.
    pub bytes: Vec<u8>,
}

/// Why a key document is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyDocError {
    TooLarge { len: usize },
    BadMagic,
    UnsupportedFormat { found: u32 },
    Truncated { what: &'static str },
    BadBody { reason: String },
    TooManyKeys { count: usize },
    TooManyApps { key: String, count: usize },
    BadKey { key: String },
    NoRootKeys,
    UntrustedRoot { signer: String },
    BadSignature { signer: String },
}

impl fmt::Display for KeyDocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use KeyDocError as E;
        match self {
            E::TooLarge { len } => write!(
                f,
                "the key document is {len} bytes; at most {MAX_KEY_DOC_BYTES} are allowed"
            ),
            E::BadMagic => write!(f, "not a takt key document (bad magic; expected `TAKTKEYS`)"),
            E::UnsupportedFormat { found } => write!(
                f,
                "key document format {found} is not supported; this takt reads format {FORMAT}"
            ),
            E::Truncated { what } => write!(f, "truncated key document: it ends inside {what}"),
            E::BadBody { reason } => write!(f, "undecodable key document: {reason}"),
            E::TooManyKeys { count } => write!(
                f,
                "the key document lists {count} keys; at most {MAX_DOC_KEYS} are allowed"
            ),
            E::TooManyApps { key, count } => write!(
                f,
                "key {key} is scoped to {count} apps; at most {MAX_SCOPE_APPS} are allowed"
            ),
            E::BadKey { key } => write!(
                f,
                "{key} in the key document is not a usable ed25519 public key (not a curve point, or a weak one)"
            ),
            E::NoRootKeys => write!(
                f,
                "the manifest names no root keys (`[ota] root_keys`), so no key document can be verified"
            ),
            E::UntrustedRoot { signer } => write!(
                f,
                "the key document is signed by {signer}, which is not among the manifest's root keys (`[ota] root_keys`)"
            ),
            E::BadSignature { signer } => write!(
                f,
                "bad key document signature: the content does not match what root key {signer} signed (corrupted or altered)"
            ),
        }
    }
}

impl std::error::Error for KeyDocError {}

/// Builds and signs a key document with root key `root`.
pub fn sign(body: &KeyDocumentBody, root: &SigningKey) -> Result<Vec<u8>, KeyDocError> {
    check_body(body)?;
    let encoded =
        bincode::serde::encode_to_vec(body, bincode::config::standard()).map_err(|e| {
            KeyDocError::BadBody {
                reason: e.to_string(),
            }
        })?;
    if encoded.len() + 16 + TRAILER > MAX_KEY_DOC_BYTES as usize {
        return Err(KeyDocError::TooLarge {
            len: encoded.len() + 16 + TRAILER,
        });
    }
    let mut out = Vec::with_capacity(encoded.len() + 16 + TRAILER);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
    out.extend_from_slice(&encoded);
    let digest: [u8; 32] = Sha256::digest(&out).into();
    out.extend_from_slice(root.verifying_key().as_bytes());
    out.extend_from_slice(&root.sign(&digest).to_bytes());
    Ok(out)
}

fn check_body(body: &KeyDocumentBody) -> Result<(), KeyDocError> {
    let count = body.keys.len() + body.revoked.len();
    if count > MAX_DOC_KEYS {
        return Err(KeyDocError::TooManyKeys { count });
    }
    for k in &body.keys {
        usable_key(&k.public)?;
        if let Some(apps) = &k.apps {
            if apps.len() > MAX_SCOPE_APPS {
                return Err(KeyDocError::TooManyApps {
                    key: to_hex(&k.public),
                    count: apps.len(),
                });
            }
        }
    }
    Ok(())
}

fn usable_key(public: &[u8; 32]) -> Result<VerifyingKey, KeyDocError> {
    match VerifyingKey::from_bytes(public) {
        Ok(k) if !k.is_weak() => Ok(k),
        _ => Err(KeyDocError::BadKey {
            key: to_hex(public),
        }),
    }
}

/// Parses a key document and checks that one of `roots` signed it.
pub fn parse(bytes: &[u8], roots: &[[u8; 32]]) -> Result<KeyDocument, KeyDocError> {
    let (signed, signer, signature) = split(bytes)?;
    if roots.is_empty() {
        return Err(KeyDocError::NoRootKeys);
    }
    if !roots.contains(&signer) {
        return Err(KeyDocError::UntrustedRoot {
            signer: to_hex(&signer),
        });
    }
    let key = usable_key(&signer)?;
    let digest: [u8; 32] = Sha256::digest(signed).into();
    key.verify_strict(&digest, &Signature::from_bytes(&signature))
        .map_err(|_| KeyDocError::BadSignature {
            signer: to_hex(&signer),
        })?;
    parse_body(bytes, signed, signer)
}

/// Parses a key document without checking its signature (`takt ota inspect` without the
/// root keys). The result must not be trusted.
pub fn parse_unverified(bytes: &[u8]) -> Result<KeyDocument, KeyDocError> {
    let (signed, signer, _) = split(bytes)?;
    parse_body(bytes, signed, signer)
}

type Parts<'a> = (&'a [u8], [u8; 32], [u8; 64]);

fn split(bytes: &[u8]) -> Result<Parts<'_>, KeyDocError> {
    if bytes.len() > MAX_KEY_DOC_BYTES as usize {
        return Err(KeyDocError::TooLarge { len: bytes.len() });
    }
    if bytes.len() < 8 {
        return Err(KeyDocError::Truncated { what: "the magic" });
    }
    if bytes[..8] != MAGIC {
        return Err(KeyDocError::BadMagic);
    }
    if bytes.len() < 16 + TRAILER {
        return Err(KeyDocError::Truncated {
            what: "the header or the signature",
        });
    }
    let format = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if format != FORMAT {
        return Err(KeyDocError::UnsupportedFormat { found: format });
    }
    let (signed, trailer) = bytes.split_at(bytes.len() - TRAILER);
    let mut signer = [0u8; 32];
    signer.copy_from_slice(&trailer[..32]);
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&trailer[32..]);
    Ok((signed, signer, signature))
}

fn parse_body(bytes: &[u8], signed: &[u8], signer: [u8; 32]) -> Result<KeyDocument, KeyDocError> {
    let len = u32::from_le_bytes([signed[12], signed[13], signed[14], signed[15]]) as usize;
    if signed.len() != 16 + len {
        return Err(KeyDocError::Truncated {
            what: "the body (its length does not match the file)",
        });
    }
    let (body, used): (KeyDocumentBody, usize) = bincode::serde::decode_from_slice(
        &signed[16..],
        bincode::config::standard().with_limit::<{ MAX_KEY_DOC_BYTES as usize }>(),
    )
    .map_err(|e| KeyDocError::BadBody {
        reason: e.to_string(),
    })?;
    if used != len {
        return Err(KeyDocError::BadBody {
            reason: format!("{} bytes left over after the body", len - used),
        });
    }
    check_body(&body)?;
    Ok(KeyDocument {
        body,
        signer,
        bytes: bytes.to_vec(),
    })
}

/// The newest valid copy, whether every copy holds exactly it, and a note per copy that
/// could not be used. Writes nothing.
#[allow(clippy::type_complexity)]
fn read_copies(
    s: &dyn Storage,
    roots: &[[u8; 32]],
) -> Result<(Option<KeyDocument>, bool, Vec<String>), String> {
    let mut notes = Vec::new();
    let mut copies: Vec<Option<KeyDocument>> = Vec::new();
    for path in COPIES {
        let doc = match s.read(path, u64::from(MAX_KEY_DOC_BYTES)) {
            Ok(None) => None,
            Ok(Some(bytes)) => match parse(&bytes, roots) {
                Ok(d) => Some(d),
                Err(e) => {
                    notes.push(format!("{path}: {e}"));
                    None
                }
            },
            Err(e) => {
                notes.push(format!("{path}: {e}"));
                None
            }
        };
        copies.push(doc);
    }
    let newest = copies
        .iter()
        .flatten()
        .max_by_key(|d| d.body.version)
        .cloned();
    let Some(doc) = newest else {
        if notes.is_empty() {
            return Ok((None, true, notes));
        }
        return Err(format!(
            "every copy of the installed key document is unreadable ({}); refusing to fall back to the manifest's keys alone, which would undo its revocations. Install the newest key document again with `takt ota keys install`",
            notes.join("; ")
        ));
    };
    let all_same = copies
        .iter()
        .all(|c| c.as_ref().is_some_and(|c| c.bytes == doc.bytes));
    Ok((Some(doc), all_same, notes))
}

/// The newest key document the state directory holds, checked against `roots`, without
/// writing anything (`takt ota inspect`).
pub fn load_installed_readonly(
    s: &mut dyn Storage,
    roots: &[[u8; 32]],
) -> Result<Option<KeyDocument>, String> {
    read_copies(s, roots).map(|(doc, _, _)| doc)
}

/// The newest key document the state directory holds, checked against `roots`, with a
/// note when a copy was missing, damaged or older (it is rewritten). `None`: none was
/// ever installed. Every copy unreadable: an error (never the manifest's keys alone).
pub fn load_installed(
    s: &mut dyn Storage,
    roots: &[[u8; 32]],
) -> Result<(Option<KeyDocument>, Vec<String>), String> {
    let (doc, all_same, mut notes) = read_copies(s, roots)?;
    let Some(doc) = doc else {
        return Ok((None, notes));
    };
    if !all_same {
        notes.push(format!(
            "key document: a copy was missing, damaged or older; both copies now hold version {}",
            doc.body.version
        ));
        install(s, &doc).map_err(|e| format!("cannot repair the key document: {e}"))?;
    }
    Ok((Some(doc), notes))
}

/// Writes `doc` as the installed key document: both copies, one after the other, each
/// atomically (a power cut leaves at least one complete copy of the old or the new one).
pub fn install(s: &mut dyn Storage, doc: &KeyDocument) -> std::io::Result<()> {
    s.create_dir(DIR)?;
    for path in COPIES {
        replace_atomically(s, path, &doc.bytes)?;
    }
    Ok(())
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
    pub fn apply(&self, doc: &KeyDocument) -> TrustedKeys {
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

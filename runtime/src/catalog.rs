//! What an app executable implements, as `takt` learns it from the executable itself.
//!
//! Owns: the app catalog (task implementations with their ports, message types with their
//! fingerprints, the takt API version the executable was built against), its framed wire
//! form, the handshake that obtains it from an executable, and the union of every app's
//! catalog that a deployment is validated against. It never reads a manifest.
//!
//! # Why a handshake
//!
//! `takt` links no app, so it must learn from each `[[app]] executable` what that
//! executable hosts before it validates a deployment. An executable built on
//! [`app_main`](crate::lifecycle::app_main) answers `EXE --takt-catalog` by writing its
//! catalog to standard output and exiting, before it parses anything else or opens any
//! resource. The alternative, a linker section read without running the program, would need
//! the catalog as a compile-time constant, and fingerprints come from trait methods that
//! cannot be evaluated at compile time. The handshake runs only code the integrator chose to
//! deploy (their own `[[app]] executable`) or code whose bundle signature was verified first
//! (OTA staging compares the signed catalog and runs nothing), with a time limit, a bounded
//! read and an empty environment.
//!
//! # Frame
//!
//! ```text
//!   magic "TAKT-CATALOG\n" (13 bytes) | format version u32 LE | payload length u32 LE
//!   | payload (bincode of AppCatalog) | SHA-256 of the payload (32 bytes)
//! ```
//!
//! A garbled frame (wrong magic, unknown version, length past [`MAX_CATALOG_BYTES`], bad
//! checksum, undecodable payload) is refused with the reason; a catalog built against
//! another [`API_VERSION`] is refused naming both versions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::manifest::{
    resolve_executable, AppCatalogError, AppDecl, Catalog, Fingerprint, ParamDecl, TaskSignature,
};
use crate::port::layout::TypeLayout;
use crate::task::Registry;

/// The version of the contract between `takt` and app executables: the catalog's content,
/// the app command line, the host plan ([`crate::lifecycle::host_plan`]) and the messages an
/// app process sends the supervisor (its end report carries per-task figures: a new figure
/// is a new version). An executable built against another version is refused before
/// anything starts.
///
/// * 1: the app process read the manifest and planned itself (`--manifest --catalogs ...`).
/// * 2: the supervisor hands it a host plan (`--takt-host FILE --app ...`).
/// * 3: task instances (`impl`, `[task.topics]`), `on_fault`, the wake-up choice in the host
///   plan; spin and fault figures in the end report.
pub const API_VERSION: u32 = 3;

/// The framing's own version (what follows the magic).
pub(crate) const FRAME_VERSION: u32 = 1;
const MAGIC: &[u8; 13] = b"TAKT-CATALOG\n";
const HEADER_BYTES: usize = MAGIC.len() + 8;
/// Magic, frame version and length: what precedes every frame's payload. (Only the host
/// plan's tests read it; a loom build has no lifecycle module.)
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const FRAME_HEADER_BYTES: usize = HEADER_BYTES;

/// Largest catalog payload accepted: far above any real app (hundreds of tasks and types
/// take a few KiB), small enough that a hostile executable cannot make takt allocate much.
pub const MAX_CATALOG_BYTES: usize = 1 << 20;

/// How long an executable may take to answer `--takt-catalog`.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The command-line flag an app executable answers with its catalog.
pub const CATALOG_FLAG: &str = "--takt-catalog";

/// One message type as an executable declares it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeDecl {
    pub name: String,
    pub size: u64,
    pub align: u64,
    /// The structural fingerprint (see [`Fingerprint`]): the hash of `layout`.
    pub hash: u64,
    /// Field names, types, offsets, nesting and array lengths, so a mismatch between two
    /// apps names the first field that differs.
    pub layout: TypeLayout,
}

/// One port of a task implementation: the topic it opens and the message type on it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortDecl {
    pub topic: String,
    pub type_name: String,
}

/// One task implementation an executable can host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskDecl {
    pub name: String,
    pub reads: Vec<PortDecl>,
    pub writes: Vec<PortDecl>,
    /// Declared parameters (name, type, default, range); empty when it declares none.
    pub params: Vec<ParamDecl>,
}

/// Everything an app executable declares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppCatalog {
    /// [`API_VERSION`] of the takt library the executable was built with.
    pub api_version: u32,
    /// The takt crate version, for humans.
    pub takt_version: String,
    pub tasks: Vec<TaskDecl>,
    pub types: Vec<TypeDecl>,
}

impl AppCatalog {
    /// What an executable built on `registry` declares.
    pub fn of(registry: &Registry) -> AppCatalog {
        let catalog = registry.catalog();
        let ports = |list: &[(String, &'static str)]| -> Vec<PortDecl> {
            list.iter()
                .map(|(topic, ty)| PortDecl {
                    topic: topic.clone(),
                    type_name: (*ty).to_string(),
                })
                .collect()
        };
        AppCatalog {
            api_version: API_VERSION,
            takt_version: env!("CARGO_PKG_VERSION").to_string(),
            tasks: catalog
                .tasks
                .iter()
                .map(|(name, sig)| TaskDecl {
                    name: name.clone(),
                    reads: ports(&sig.reads),
                    writes: ports(&sig.writes),
                    params: sig.params.clone(),
                })
                .collect(),
            types: catalog
                .types
                .values()
                .map(|fp| TypeDecl {
                    name: fp.name.to_string(),
                    size: fp.size as u64,
                    align: fp.align as u64,
                    hash: fp.hash,
                    layout: registry
                        .layout(fp.name)
                        .cloned()
                        .unwrap_or_else(|| TypeLayout::primitive(fp.name, fp.size, fp.align)),
                })
                .collect(),
        }
    }

    /// The structure of every message type this catalog declares.
    #[cfg(feature = "platform")]
    pub fn layouts(&self) -> crate::ota::bundle::Layouts {
        self.types
            .iter()
            .map(|t| (t.name.clone(), t.layout.clone()))
            .collect()
    }

    /// The validator's view of this one catalog, every task owned by `app`.
    pub fn to_catalog(&self, app: &str) -> Catalog {
        let mut c = Catalog::default();
        self.add_to(&mut c, app);
        c
    }

    fn add_to(&self, c: &mut Catalog, app: &str) {
        for t in &self.types {
            c.types.insert(intern(&t.name), fingerprint(t));
        }
        let ports = |list: &[PortDecl]| -> Vec<(String, &'static str)> {
            list.iter()
                .map(|p| (p.topic.clone(), intern(&p.type_name)))
                .collect()
        };
        for t in &self.tasks {
            c.tasks.insert(
                t.name.clone(),
                TaskSignature {
                    reads: ports(&t.reads),
                    writes: ports(&t.writes),
                    params: t.params.clone(),
                },
            );
            let owners = c.owners.entry(t.name.clone()).or_default();
            if !owners.iter().any(|o| o == app) {
                owners.push(app.to_string());
            }
        }
    }

    /// The framed bytes an executable writes for `--takt-catalog`.
    pub fn encode(&self) -> Vec<u8> {
        encode_frame(MAGIC, self)
    }

    /// Decodes a frame written by [`encode`](Self::encode), refusing anything else.
    pub fn decode(bytes: &[u8]) -> Result<AppCatalog, CatalogFormatError> {
        let catalog: AppCatalog = decode_frame::<_, MAX_CATALOG_BYTES>(MAGIC, bytes)?;
        if catalog.api_version != API_VERSION {
            return Err(CatalogFormatError::ApiVersion {
                found: catalog.api_version,
                takt_version: catalog.takt_version,
            });
        }
        Ok(catalog)
    }
}

/// Frames `value` (see the module doc); shared with the host plan.
pub(crate) fn encode_frame<T: Serialize>(magic: &[u8; 13], value: &T) -> Vec<u8> {
    // Serializing plain strings and integers into a Vec cannot fail.
    let payload =
        bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap_or_default();
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len() + 32);
    out.extend_from_slice(magic);
    out.extend_from_slice(&FRAME_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&Sha256::digest(&payload));
    out
}

/// For the tests of every framed format: each cut of `bytes` (a good frame) and each byte
/// of it flipped is refused by `decode`, never a panic, since the checksum covers the
/// payload and the header is checked field by field.
#[cfg(test)]
pub(crate) fn assert_every_damage_refused<T, E>(
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, E>,
) {
    for cut in 0..bytes.len() {
        assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    for i in 0..bytes.len() {
        let mut b = bytes.to_vec();
        b[i] ^= 0x41;
        assert!(decode(&b).is_err(), "flipped byte {i}");
    }
}

/// Checks and decodes a frame whose payload is at most `MAX` bytes.
pub(crate) fn decode_frame<T: serde::de::DeserializeOwned, const MAX: usize>(
    magic: &[u8; 13],
    bytes: &[u8],
) -> Result<T, CatalogFormatError> {
    if bytes.len() < magic.len() || &bytes[..magic.len()] != magic {
        return Err(CatalogFormatError::NotACatalog);
    }
    if bytes.len() < HEADER_BYTES {
        return Err(CatalogFormatError::Truncated {
            have: bytes.len(),
            need: HEADER_BYTES,
        });
    }
    let word =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let version = word(magic.len());
    if version != FRAME_VERSION {
        return Err(CatalogFormatError::FrameVersion(version));
    }
    let len = word(magic.len() + 4) as usize;
    if len > MAX {
        return Err(CatalogFormatError::TooLarge(len));
    }
    let need = HEADER_BYTES + len + 32;
    if bytes.len() < need {
        return Err(CatalogFormatError::Truncated {
            have: bytes.len(),
            need,
        });
    }
    let payload = &bytes[HEADER_BYTES..HEADER_BYTES + len];
    if Sha256::digest(payload).as_slice() != &bytes[HEADER_BYTES + len..need] {
        return Err(CatalogFormatError::Checksum);
    }
    let config = bincode::config::standard().with_limit::<MAX>();
    let (value, used): (T, usize) = bincode::serde::decode_from_slice(payload, config)
        .map_err(|e| CatalogFormatError::Payload(e.to_string()))?;
    if used != len {
        return Err(CatalogFormatError::Payload(format!(
            "{} bytes after the catalog",
            len - used
        )));
    }
    Ok(value)
}

/// The catalogs of every app of a deployment, as the supervisor validated them: written to
/// a file for the app processes, which validate the same deployment against the same union
/// (so every process computes the same plan) and check their own part of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeploymentCatalogs {
    pub apps: Vec<SourcedCatalog>,
}

const DEPLOYMENT_MAGIC: &[u8; 13] = b"TAKT-CATALOGS";

impl DeploymentCatalogs {
    pub fn encode(&self) -> Vec<u8> {
        encode_frame(DEPLOYMENT_MAGIC, self)
    }

    pub fn decode(bytes: &[u8]) -> Result<DeploymentCatalogs, CatalogFormatError> {
        let d: DeploymentCatalogs = decode_frame::<_, MAX_CATALOG_BYTES>(DEPLOYMENT_MAGIC, bytes)?;
        if let Some(a) = d.apps.iter().find(|a| a.catalog.api_version != API_VERSION) {
            return Err(CatalogFormatError::ApiVersion {
                found: a.catalog.api_version,
                takt_version: a.catalog.takt_version.clone(),
            });
        }
        Ok(d)
    }

    /// Reads the file the supervisor wrote (bounded like every file takt reads).
    pub fn read(path: &Path) -> Result<DeploymentCatalogs, CatalogsReadError> {
        let bytes = crate::fsio::read_bounded(path, (HEADER_BYTES + MAX_CATALOG_BYTES + 33) as u64)
            .map_err(|e| CatalogsReadError {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        DeploymentCatalogs::decode(&bytes).map_err(|e| CatalogsReadError {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// The union every process validates against.
    pub fn union(&self) -> Result<Catalog, Vec<CatalogConflict>> {
        union(&self.apps)
    }

    /// The structure of every message type of the deployment (the union guarantees that
    /// the apps agree on it).
    #[cfg(feature = "platform")]
    pub fn layouts(&self) -> crate::ota::bundle::Layouts {
        self.apps.iter().flat_map(|a| a.catalog.layouts()).collect()
    }
}

/// Checks that `own` (the catalog of the running executable) declares app `app`'s part
/// of the deployment exactly as the supervisor validated it: the same tasks with the same
/// ports, the same message types. An executable replaced on disk between validation and
/// start would otherwise run unchecked.
pub fn check_own_part(
    validated: &DeploymentCatalogs,
    app: &str,
    own: &AppCatalog,
) -> Result<(), OwnPartError> {
    let Some(v) = validated.apps.iter().find(|a| a.app == app) else {
        return Err(OwnPartError::NotValidated {
            app: app.to_string(),
        });
    };
    for t in &v.catalog.tasks {
        match own.tasks.iter().find(|o| o.name == t.name) {
            Some(o) if o == t => {}
            Some(_) => {
                return Err(OwnPartError::OtherPorts {
                    task: t.name.clone(),
                    validated_with: v.executable.clone(),
                })
            }
            None => {
                return Err(OwnPartError::MissingTask {
                    task: t.name.clone(),
                    validated_with: v.executable.clone(),
                })
            }
        }
    }
    for ty in &v.catalog.types {
        if let Some(o) = own.types.iter().find(|o| o.name == ty.name) {
            if o != ty {
                return Err(OwnPartError::OtherType {
                    type_name: ty.name.clone(),
                    hash_here: o.hash,
                    hash_validated: ty.hash,
                    validated_with: v.executable.clone(),
                });
            }
        }
    }
    Ok(())
}

/// The file of validated catalogs could not be read: its path and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogsReadError {
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for CatalogsReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for CatalogsReadError {}

/// Why the running executable is not what the supervisor validated ([`check_own_part`]).
/// `validated_with` names the executable the deployment was validated with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnPartError {
    /// The supervisor validated no catalog for this app.
    NotValidated { app: String },
    /// A task implementation declares other ports here.
    OtherPorts {
        task: String,
        validated_with: String,
    },
    /// A task implementation the deployment was validated with is missing here.
    MissingTask {
        task: String,
        validated_with: String,
    },
    /// A message type has another layout fingerprint here.
    OtherType {
        type_name: String,
        hash_here: u64,
        hash_validated: u64,
        validated_with: String,
    },
}

impl fmt::Display for OwnPartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OwnPartError::NotValidated { app } => {
                write!(f, "the supervisor validated no catalog for app `{app}`")
            }
            OwnPartError::OtherPorts {
                task,
                validated_with,
            } => write!(
                f,
                "task implementation `{task}` declares other ports than the catalog the deployment was validated with ({validated_with})"
            ),
            OwnPartError::MissingTask {
                task,
                validated_with,
            } => write!(
                f,
                "task implementation `{task}` is missing from this executable, though the deployment was validated with it ({validated_with})"
            ),
            OwnPartError::OtherType {
                type_name,
                hash_here,
                hash_validated,
                validated_with,
            } => write!(
                f,
                "message type `{type_name}` has fingerprint {hash_here:016x} here, {hash_validated:016x} in the catalog the deployment was validated with ({validated_with})"
            ),
        }
    }
}

impl std::error::Error for OwnPartError {}

fn fingerprint(t: &TypeDecl) -> Fingerprint {
    Fingerprint {
        name: intern(&t.name),
        size: t.size as usize,
        align: t.align as usize,
        hash: t.hash,
    }
}

/// A `'static` copy of `name`, made once per distinct name for the life of the process.
/// Catalog types carry `&'static str` names (message types compiled into a process have
/// them); names read from executables join them here, so loading catalogs again and again
/// (every OTA stage does) costs no more memory than the set of distinct names.
fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = names.get(name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// Why bytes are not a catalog this takt accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatalogFormatError {
    /// The output does not start with the catalog magic: not a takt app.
    NotACatalog,
    Truncated {
        have: usize,
        need: usize,
    },
    FrameVersion(u32),
    TooLarge(usize),
    Checksum,
    Payload(String),
    /// Built against another takt API.
    ApiVersion {
        found: u32,
        takt_version: String,
    },
}

impl fmt::Display for CatalogFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatalogFormatError::NotACatalog => write!(
                f,
                "it is not a takt app: its answer to {CATALOG_FLAG} does not start with a takt catalog (build it on takt::lifecycle::app_main)"
            ),
            CatalogFormatError::Truncated { have, need } => {
                write!(f, "its catalog is truncated ({have} of {need} bytes)")
            }
            CatalogFormatError::FrameVersion(v) => write!(
                f,
                "its catalog has frame version {v}; this takt reads version {FRAME_VERSION}"
            ),
            CatalogFormatError::TooLarge(n) => write!(
                f,
                "its catalog declares {n} bytes, more than the {MAX_CATALOG_BYTES} allowed"
            ),
            CatalogFormatError::Checksum => write!(f, "its catalog is garbled (checksum mismatch)"),
            CatalogFormatError::Payload(e) => write!(f, "its catalog is garbled: {e}"),
            CatalogFormatError::ApiVersion {
                found,
                takt_version,
            } => write!(
                f,
                "it was built against takt API version {found} (takt {takt_version}); this takt speaks API version {API_VERSION} (takt {}): rebuild the app against this takt",
                env!("CARGO_PKG_VERSION")
            ),
        }
    }
}

impl std::error::Error for CatalogFormatError {}

/// Why the catalog of an executable could not be obtained.
#[derive(Debug)]
pub enum CatalogReadError {
    Missing(PathBuf),
    NotAFile(PathBuf),
    NotExecutable(PathBuf),
    Spawn(PathBuf, std::io::Error),
    Timeout(PathBuf),
    /// It exited unsuccessfully; the first line of what it printed on stderr.
    Failed {
        path: PathBuf,
        status: String,
        stderr: String,
    },
    Format(PathBuf, CatalogFormatError),
}

impl fmt::Display for CatalogReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatalogReadError::Missing(p) => write!(f, "executable {} does not exist", p.display()),
            CatalogReadError::NotAFile(p) => {
                write!(f, "executable {} is not a regular file", p.display())
            }
            CatalogReadError::NotExecutable(p) => write!(
                f,
                "{} is not executable (no execute permission)",
                p.display()
            ),
            CatalogReadError::Spawn(p, e) => write!(f, "cannot run {}: {e}", p.display()),
            CatalogReadError::Timeout(p) => write!(
                f,
                "{} did not answer {CATALOG_FLAG} within {}s: not a takt app, or it hangs",
                p.display(),
                HANDSHAKE_TIMEOUT.as_secs()
            ),
            CatalogReadError::Failed {
                path,
                status,
                stderr,
            } => write!(
                f,
                "{} {CATALOG_FLAG} failed ({status}){}: not a takt app, or built against another takt",
                path.display(),
                if stderr.is_empty() {
                    String::new()
                } else {
                    format!(": {stderr}")
                }
            ),
            CatalogReadError::Format(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for CatalogReadError {}

/// Obtains the catalog of the executable at `path` by the `--takt-catalog` handshake: run
/// with an empty environment, no stdin, a bounded read of stdout and [`HANDSHAKE_TIMEOUT`].
pub fn read_from_executable(path: &Path) -> Result<AppCatalog, CatalogReadError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|_| CatalogReadError::Missing(path.into()))?;
    if !meta.is_file() {
        return Err(CatalogReadError::NotAFile(path.into()));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(CatalogReadError::NotExecutable(path.into()));
    }
    let mut command = Command::new(path);
    command
        .arg(CATALOG_FLAG)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let spawned = crate::process::spawn_unless_text_busy(&mut command);
    let mut child = spawned.map_err(|e| CatalogReadError::Spawn(path.into(), e))?;
    // Read both pipes on threads, each through a bound, so a program that writes forever
    // or never closes its pipes cannot hold takt: the wait below has its own deadline.
    let bounded = |pipe: Option<Box<dyn Read + Send>>, limit: u64| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(p) = pipe {
                let _ = p.take(limit).read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = bounded(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        (HEADER_BYTES + MAX_CATALOG_BYTES + 33) as u64,
    );
    let err = bounded(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        4096,
    );
    let Some(Ok(status)) =
        crate::process::finish_within(child, HANDSHAKE_TIMEOUT, |mut c| c.wait())
    else {
        return Err(CatalogReadError::Timeout(path.into()));
    };
    // The process has exited; a grandchild holding the pipes open could still block the
    // readers, so they get a short grace and are abandoned after it.
    let join = |h: std::thread::JoinHandle<Vec<u8>>| {
        let until = Instant::now() + Duration::from_secs(1);
        let mut pause = Duration::from_micros(50);
        while !h.is_finished() && Instant::now() < until {
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(2));
        }
        if h.is_finished() {
            h.join().unwrap_or_default()
        } else {
            Vec::new()
        }
    };
    let stdout = join(out);
    let stderr = join(err);
    if !status.success() {
        let text = String::from_utf8_lossy(&stderr);
        return Err(CatalogReadError::Failed {
            path: path.into(),
            status: status.to_string(),
            stderr: text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .to_string(),
        });
    }
    AppCatalog::decode(&stdout).map_err(|e| CatalogReadError::Format(path.into(), e))
}

/// Two apps' catalogs that cannot serve one deployment together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatalogConflict {
    /// Two apps with different executables both implement a task.
    TaskTwice {
        task: String,
        first: (String, String),
        second: (String, String),
    },
    /// Two apps declare one message type name with different layouts.
    TypeDiffers {
        type_name: String,
        first: (String, TypeDecl),
        second: (String, TypeDecl),
    },
}

impl fmt::Display for CatalogConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatalogConflict::TaskTwice {
                task,
                first,
                second,
            } => write!(
                f,
                "task implementation `{task}` is declared by app `{}` ({}) and by app `{}` ({}); a task implementation may come from one app only",
                first.0, first.1, second.0, second.1
            ),
            CatalogConflict::TypeDiffers {
                type_name,
                first,
                second,
            } => {
                write!(
                    f,
                    "message type `{type_name}` differs between app `{}` (fingerprint {:016x}) and app `{}` (fingerprint {:016x})",
                    first.0, first.1.hash, second.0, second.1.hash
                )?;
                if let Some(d) = first.1.layout.first_difference(&second.1.layout) {
                    write!(f, ": {d} (app `{}` vs app `{}`)", first.0, second.0)?;
                }
                write!(f, "; both sides of a channel must be built from the same definition")
            }
        }
    }
}

/// One app's catalog with where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourcedCatalog {
    pub app: String,
    /// The executable as the manifest names it (for messages).
    pub executable: String,
    pub catalog: AppCatalog,
}

/// The union of every app's catalog: what a deployment is validated against. Each task
/// implementation remembers the apps that declared it, so the validator can require a task
/// to be hosted by an app whose executable implements it.
pub fn union(apps: &[SourcedCatalog]) -> Result<Catalog, Vec<CatalogConflict>> {
    let mut conflicts = Vec::new();
    let mut task_from: BTreeMap<&str, &SourcedCatalog> = BTreeMap::new();
    let mut type_from: BTreeMap<&str, (&SourcedCatalog, &TypeDecl)> = BTreeMap::new();
    let mut c = Catalog::default();
    for a in apps {
        for t in &a.catalog.tasks {
            match task_from.get(t.name.as_str()) {
                Some(first) if first.executable != a.executable => {
                    conflicts.push(CatalogConflict::TaskTwice {
                        task: t.name.clone(),
                        first: (first.app.clone(), first.executable.clone()),
                        second: (a.app.clone(), a.executable.clone()),
                    });
                }
                Some(_) => {}
                None => {
                    task_from.insert(&t.name, a);
                }
            }
        }
        for ty in &a.catalog.types {
            match type_from.get(ty.name.as_str()) {
                Some((first, decl)) if *decl != ty => {
                    conflicts.push(CatalogConflict::TypeDiffers {
                        type_name: ty.name.clone(),
                        first: (first.app.clone(), (*decl).clone()),
                        second: (a.app.clone(), ty.clone()),
                    });
                }
                Some(_) => {}
                None => {
                    type_from.insert(&ty.name, (a, ty));
                }
            }
        }
        a.catalog.add_to(&mut c, &a.app);
    }
    if conflicts.is_empty() {
        Ok(c)
    } else {
        Err(conflicts)
    }
}

/// Obtains the catalog of every app of a manifest (`source` is the manifest's path, for
/// resolving relative executables) from its executable, and their union. Errors name the
/// app and the executable; the manifest loader reports them at the app's `executable` key.
pub fn for_apps(
    source: &str,
    apps: &[AppDecl],
) -> Result<(Catalog, DeploymentCatalogs), Vec<AppCatalogError>> {
    let mut errors = Vec::new();
    let mut sourced = Vec::new();
    // The handshakes run at once, one thread each: every one is a process start.
    let answers: Vec<Option<Result<AppCatalog, CatalogReadError>>> = std::thread::scope(|s| {
        let asked: Vec<_> = apps
            .iter()
            .map(|a| {
                a.executable.as_ref().map(|exe| {
                    let path = resolve_executable(source, exe);
                    (path.clone(), s.spawn(move || read_from_executable(&path)))
                })
            })
            .collect();
        asked
            .into_iter()
            .map(|h| {
                h.map(|(path, h)| {
                    h.join().unwrap_or_else(|_| {
                        Err(CatalogReadError::Spawn(
                            path,
                            std::io::Error::other("the handshake thread panicked"),
                        ))
                    })
                })
            })
            .collect()
    });
    for (a, answer) in apps.iter().zip(answers) {
        // An answer exists exactly for the apps that name an executable.
        let (Some(exe), Some(answer)) = (&a.executable, answer) else {
            errors.push(AppCatalogError {
                app: a.name.clone(),
                message: format!(
                    "app `{}` names no executable; takt links no app, so every [[app]] needs `executable = \"PATH\"`, a program built on takt::lifecycle::app_main (a relative path is relative to the manifest's directory)",
                    a.name
                ),
            });
            continue;
        };
        match answer {
            Ok(catalog) => sourced.push(SourcedCatalog {
                app: a.name.clone(),
                executable: exe.clone(),
                catalog,
            }),
            Err(e) => errors.push(AppCatalogError {
                app: a.name.clone(),
                message: format!("app `{}`: {e}", a.name),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let all = DeploymentCatalogs { apps: sourced };
    match all.union() {
        Ok(c) => Ok((c, all)),
        Err(conflicts) => Err(conflicts
            .into_iter()
            .map(|c| AppCatalogError {
                app: match &c {
                    CatalogConflict::TaskTwice { second, .. } => second.0.clone(),
                    CatalogConflict::TypeDiffers { second, .. } => second.0.clone(),
                },
                message: c.to_string(),
            })
            .collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AppCatalog {
        AppCatalog {
            api_version: API_VERSION,
            takt_version: "0.1.0".into(),
            tasks: vec![TaskDecl {
                name: "radar".into(),
                reads: vec![PortDecl {
                    topic: "truth".into(),
                    type_name: "GroundTruth".into(),
                }],
                writes: vec![PortDecl {
                    topic: "radar_track".into(),
                    type_name: "RadarTrack".into(),
                }],
                params: Vec::new(),
            }],
            types: vec![TypeDecl {
                name: "RadarTrack".into(),
                size: 24,
                align: 8,
                hash: 7,
                layout: TypeLayout::primitive("RadarTrack", 24, 8),
            }],
        }
    }

    #[test]
    fn a_frame_round_trips() {
        let c = sample();
        assert_eq!(AppCatalog::decode(&c.encode()), Ok(c));
    }

    #[test]
    fn every_cut_and_every_flipped_byte_is_refused_never_a_panic() {
        assert_every_damage_refused(&sample().encode(), AppCatalog::decode);
    }

    #[test]
    fn a_huge_declared_length_is_refused_before_reading() {
        let mut bytes = sample().encode();
        bytes[MAGIC.len() + 4..MAGIC.len() + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            AppCatalog::decode(&bytes),
            Err(CatalogFormatError::TooLarge(u32::MAX as usize))
        );
    }

    #[test]
    fn another_api_version_is_refused_naming_both() {
        let mut c = sample();
        c.api_version = API_VERSION + 1;
        let e = AppCatalog::decode(&c.encode()).expect_err("another API");
        let text = e.to_string();
        assert!(
            text.contains(&format!("API version {}", API_VERSION + 1)),
            "{text}"
        );
        assert!(
            text.contains(&format!("speaks API version {API_VERSION}")),
            "{text}"
        );
    }

    #[test]
    fn output_that_is_not_a_catalog_says_so() {
        assert_eq!(
            AppCatalog::decode(b"Usage: some-tool [OPTIONS]\n"),
            Err(CatalogFormatError::NotACatalog)
        );
    }

    fn sourced(app: &str, exe: &str, c: AppCatalog) -> SourcedCatalog {
        SourcedCatalog {
            app: app.into(),
            executable: exe.into(),
            catalog: c,
        }
    }

    #[test]
    fn the_union_records_which_app_implements_each_task() {
        let mut other = sample();
        other.tasks[0].name = "camera".into();
        let u = union(&[sourced("a", "x", sample()), sourced("b", "y", other)]).expect("union");
        assert_eq!(u.owners["radar"], ["a"]);
        assert_eq!(u.owners["camera"], ["b"]);
        assert_eq!(u.types["RadarTrack"].hash, 7);
    }

    #[test]
    fn one_task_from_two_executables_is_a_conflict_naming_both() {
        let e = union(&[sourced("a", "x", sample()), sourced("b", "y", sample())])
            .expect_err("conflict");
        let text = e[0].to_string();
        assert!(
            text.contains("`radar`")
                && text.contains("app `a` (x)")
                && text.contains("app `b` (y)"),
            "{text}"
        );
        // The same executable serving two apps is one supplier's binary: no conflict.
        assert!(union(&[sourced("a", "x", sample()), sourced("b", "x", sample())]).is_ok());
    }

    #[test]
    fn a_swapped_field_between_two_apps_is_named_with_both_sides() {
        let f64_ = || TypeLayout::primitive("f64", 8, 8);
        let lane = |first: &str, second: &str| {
            TypeLayout::structure(
                "LaneEstimate",
                16,
                8,
                vec![
                    crate::port::layout::FieldLayout::new(first, 0, f64_()),
                    crate::port::layout::FieldLayout::new(second, 8, f64_()),
                ],
            )
        };
        let decl = |layout: TypeLayout| TypeDecl {
            name: "LaneEstimate".into(),
            size: 16,
            align: 8,
            hash: layout.hash(),
            layout,
        };
        let mut a = sample();
        a.types = vec![decl(lane("offset_m", "heading_rad"))];
        let mut b = sample();
        b.tasks.clear();
        b.types = vec![decl(lane("heading_rad", "offset_m"))];
        let e = union(&[sourced("perception", "x", a), sourced("control", "y", b)])
            .expect_err("conflict");
        let text = e[0].to_string();
        assert!(text.contains("`LaneEstimate`"), "{text}");
        assert!(
            text.contains("field offset_m: f64 at offset 0 vs f64 at offset 8"),
            "{text}"
        );
        assert!(text.contains("app `perception` vs app `control`"), "{text}");
    }

    #[test]
    fn one_type_with_two_layouts_is_a_conflict() {
        let mut other = sample();
        other.tasks.clear();
        other.types[0].hash = 8;
        let e =
            union(&[sourced("a", "x", sample()), sourced("b", "y", other)]).expect_err("conflict");
        assert!(
            matches!(&e[0], CatalogConflict::TypeDiffers { type_name, .. } if type_name == "RadarTrack")
        );
    }
}

//! Deployment manifest: TOML text → validated [`Deployment`].
//!
//! Owns: reading the manifest file (bounded by [`limits::MAX_MANIFEST_BYTES`]), parsing
//! it, checking every rule, and reporting every problem found in one pass, each with
//! `file:line:column`, the dotted field (`task.radar.budget`, or `task[2].budget` when the
//! task has no usable name; list indices are 0-based) and what is allowed. It must never
//! panic on any input, never stop at the first error, and never start, plan or touch
//! anything beyond the one file it is given.
//!
//! The work is split in two passes so each rule lives in one place:
//! * `parse`: TOML syntax, the keys allowed where, required keys, value types, and rules
//!   on single values (name charset, duration syntax, priority range). Every value keeps
//!   its byte offset, which `source` turns into line and column.
//! * `validate`: everything that relates values to each other, to the catalog of
//!   linked task implementations and message types, or to this machine's cores.
//!
//! `manifest` uses two leaf items of other modules: `time::parse_duration_ns` (one duration
//! syntax for the whole crate) and `port::MAX_READERS_PER_TOPIC` (the capacity the port
//! layer opens services with, so a manifest it cannot serve is refused here, not at start).
//! The `[ota]` table's keys are checked with `ed25519_dalek` directly, not through `ota`,
//! so `manifest` stays below every other module; `ota::bundle::TrustedKeys::add` accepts
//! every key this module accepts.

pub mod model;
// Reading TOML is the platform's job (`takt check|plan|run|ota`): an app process gets
// the validated model from its supervisor (`lifecycle::host_plan`) and never parses.
#[cfg(feature = "platform")]
mod parse;
#[cfg(feature = "platform")]
mod source;
#[cfg(feature = "platform")]
mod validate;

use std::path::Path;

pub use model::*;

/// One problem found in a manifest, located in its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    pub file: String,
    /// 1-based; 0 when the problem has no location (e.g. the file is missing).
    pub line: usize,
    /// 1-based, in characters; 0 when `line` is 0.
    pub column: usize,
    /// Dotted path of the field, e.g. `task[2].budget` or `task.radar.budget`; empty when
    /// the problem is not about one field (a TOML syntax error, an unreadable file).
    pub field: String,
    /// What is wrong and what is allowed, on one line.
    pub message: String,
}

impl std::fmt::Display for ManifestError {
    /// `file:line:column: field: message`, leaving out the position when there is none
    /// and the field when it is empty.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why a manifest could not be loaded: every error found, in file order.
/// An `[[app]]` as the manifest declares it, before validation: what a caller needs to
/// obtain the app's catalog (see [`load_with`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppDecl {
    pub name: String,
    /// The `executable` key as written (relative paths are relative to the manifest's
    /// directory; see [`resolve_executable`]).
    pub executable: Option<String>,
}

/// Why one app's catalog could not be had: reported at that app in the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppCatalogError {
    pub app: String,
    pub message: String,
}

/// Where an app's `executable` is: absolute paths as written, relative ones against the
/// directory of the manifest `source` (so a manifest and the executables beside it move
/// together), and a bare name too (`executable = "lanekeep"` is `./lanekeep` next to the
/// manifest, never a `$PATH` lookup: what runs must not depend on the environment).
pub fn resolve_executable(source: &str, executable: &str) -> std::path::PathBuf {
    let exe = Path::new(executable);
    if exe.is_absolute() {
        return exe.to_path_buf();
    }
    let dir = Path::new(source)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    dir.join(exe)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestLoadError {
    pub errors: Vec<ManifestError>,
}

impl std::fmt::Display for ManifestLoadError {
    /// One error per line, in file order.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestLoadError {}

/// Number of logical CPUs this machine has (cores `0..n` are valid in a manifest).
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(feature = "platform")]
/// Reads and validates the manifest at `path`.
///
/// The file is read through a bound of [`limits::MAX_MANIFEST_BYTES`] + 1 bytes, so a huge
/// file (or an endless one such as a device) is refused without being read whole.
pub fn load(path: &Path, catalog: &Catalog, cores: usize) -> Result<Deployment, ManifestLoadError> {
    load_with(path, cores, |_| Ok(catalog.clone()))
}

#[cfg(feature = "platform")]
/// Like [`load`], with the catalog obtained from the manifest's own `[[app]]` declarations:
/// `catalogs` gets every app (name and executable) that parsed, and returns the union of
/// their catalogs, or errors about individual apps, which are reported at the app's
/// `executable` key (or its `[[app]]` table) like any other manifest error.
pub fn load_with(
    path: &Path,
    cores: usize,
    catalogs: impl FnOnce(&[AppDecl]) -> Result<Catalog, Vec<AppCatalogError>>,
) -> Result<Deployment, ManifestLoadError> {
    let file = path.display().to_string();
    let one = |line: usize, column: usize, message: String| ManifestLoadError {
        errors: vec![ManifestError {
            file: file.clone(),
            line,
            column,
            field: String::new(),
            message,
        }],
    };
    let bytes = read_bounded(path).map_err(|message| one(0, 0, message))?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => parse_with(&file, text, cores, catalogs),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            // `valid` is UTF-8 by the definition of `valid_up_to`.
            let prefix = std::str::from_utf8(valid).unwrap_or("");
            let (line, column) = source::Source::new(prefix).position(prefix.len());
            Err(one(
                line,
                column,
                format!(
                    "the file is not UTF-8 text (invalid byte at offset {}); a manifest is a UTF-8 TOML file",
                    e.valid_up_to()
                ),
            ))
        }
    }
}

#[cfg(feature = "platform")]
/// The file's bytes, or a one-line reason (with the OS's words) why they cannot be had.
fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    crate::fsio::read_bounded(path, limits::MAX_MANIFEST_BYTES).map_err(|e| match e {
        crate::fsio::ReadBoundedError::Io(e) => format!("cannot read the manifest: {e}"),
        crate::fsio::ReadBoundedError::TooLarge { size, max_bytes } => format!(
            "the file is {size} bytes or more, larger than the {max_bytes} bytes a manifest may have"
        ),
        other => format!("cannot read the manifest: {other}"),
    })
}

#[cfg(feature = "platform")]
/// Validates manifest `text`; `file` names it in errors and becomes [`Deployment::source`].
/// `cores` is the number of logical CPUs of the machine the deployment is for (usually
/// [`available_cores`]).
pub fn parse(
    file: &str,
    text: &str,
    catalog: &Catalog,
    cores: usize,
) -> Result<Deployment, ManifestLoadError> {
    parse_with(file, text, cores, |_| Ok(catalog.clone()))
}

#[cfg(feature = "platform")]
/// [`parse`] with the catalog from the manifest's apps (see [`load_with`]).
pub fn parse_with(
    file: &str,
    text: &str,
    cores: usize,
    catalogs: impl FnOnce(&[AppDecl]) -> Result<Catalog, Vec<AppCatalogError>>,
) -> Result<Deployment, ManifestLoadError> {
    let mut cx = source::Diagnostics::new(file, text);
    if text.len() as u64 > limits::MAX_MANIFEST_BYTES {
        cx.error(
            0,
            "",
            format!(
                "the manifest is {} bytes, larger than the {} bytes a manifest may have",
                text.len(),
                limits::MAX_MANIFEST_BYTES
            ),
        );
        return Err(ManifestLoadError {
            errors: cx.into_errors(),
        });
    }
    let deployment = parse::parse_document(&mut cx, text).and_then(|raw| {
        let apps: Vec<AppDecl> = raw
            .apps
            .iter()
            .filter_map(|a| {
                Some(AppDecl {
                    name: a.name.as_ref()?.value.clone(),
                    executable: a.executable.as_ref().and_then(|e| e.value.clone()),
                })
            })
            .collect();
        let catalog = match catalogs(&apps) {
            Ok(c) => c,
            Err(errors) => {
                for e in errors {
                    let raw_app = raw
                        .apps
                        .iter()
                        .find(|a| a.name.as_ref().is_some_and(|n| n.value == e.app));
                    let (at, field) = match raw_app {
                        Some(a) => match &a.executable {
                            Some(x) => (x.at, a.section.field("executable")),
                            None => (a.section.at, a.section.path.clone()),
                        },
                        None => (0, format!("app.{}", e.app)),
                    };
                    cx.error(at, field, e.message);
                }
                return None;
            }
        };
        validate::validate(&mut cx, &raw, file, &catalog, cores)
    });
    match deployment {
        Some(d) if !cx.has_errors() => Ok(d),
        _ => {
            if !cx.has_errors() {
                // Every path that refuses a manifest reports why; this guards that promise
                // so a gap shows up as a clear message rather than an empty error list.
                cx.error(
                    0,
                    "",
                    "internal error: the manifest was refused without a reason; please report this with the manifest",
                );
            }
            Err(ManifestLoadError {
                errors: cx.into_errors(),
            })
        }
    }
}

#[cfg(all(test, feature = "platform"))]
mod tests;

/// SHA-256 of the manifest file's bytes: identifies the deployment in trace files, so
/// traces of different processes of one deployment can be matched.
pub fn hash_file(path: &Path) -> std::io::Result<[u8; 32]> {
    use sha2::{Digest, Sha256};
    let bytes = crate::fsio::read_bounded(path, limits::MAX_MANIFEST_BYTES)
        .map_err(crate::fsio::ReadBoundedError::into_io)?;
    Ok(Sha256::digest(bytes).into())
}

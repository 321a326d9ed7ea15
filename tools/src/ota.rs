//! `takt ota keygen | sign | inspect | keys`: make signing keys, build signed bundles and
//! key documents, look into them, install a key document offline. Staging and activation
//! go through the supervisor and are not here.
//!
//! Thin: the bundle and key document formats, signing and verification live in
//! `takt::ota::{bundle, keys}`.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use takt::ota::bundle::{self, Bundle, Entry, Fragment, PortDirection, TrustedKeys};
use takt::ota::keys::{self, DocKey, KeyDocument, KeyDocumentBody};
use takt::ota::{from_hex, to_hex};

use crate::cli::{OtaCommand, OtaKeysCommand};
use crate::common::{self, Failure};

/// Files above this size get a progress bar while they are read and signed.
const PROGRESS_FROM_BYTES: u64 = 8 << 20;
/// Largest key file read.
const MAX_KEY_FILE_BYTES: u64 = 4096;

pub fn ota(command: &OtaCommand) -> Result<(), Failure> {
    match command {
        OtaCommand::Keygen { out } => keygen(out),
        OtaCommand::Sign {
            key,
            app,
            version,
            label,
            executable,
            files,
            manifest,
            out,
            expires,
            key_doc,
            delta_from,
        } => sign(&SignArgs {
            key,
            app,
            version: *version,
            label: label.as_deref(),
            executable,
            files,
            manifest,
            out,
            expires,
            key_doc: key_doc.as_deref(),
            delta_from: delta_from.as_deref(),
        }),
        OtaCommand::Keys { command } => keys_command(command),
        OtaCommand::Inspect {
            bundle,
            trusted,
            manifest,
            ota_dir,
            json,
        } => inspect(
            bundle,
            trusted,
            manifest.as_deref(),
            ota_dir.as_deref(),
            *json,
        ),
        OtaCommand::Stage { bundle, control } => crate::ota_live::stage(bundle, control.as_deref()),
        OtaCommand::Activate {
            app,
            hot_swap,
            at_safe_state: _,
            timeout,
            control,
        } => crate::ota_live::activate(app, *hot_swap, timeout, control.as_deref()),
        OtaCommand::Rollback { app, control } => crate::ota_live::rollback(app, control.as_deref()),
        OtaCommand::Status {
            json,
            control,
            manifest,
            ota_dir,
        } => crate::ota_live::status(
            *json,
            control.as_deref(),
            manifest.as_deref(),
            ota_dir.as_deref(),
        ),
    }
}

fn pub_path(key: &Path) -> PathBuf {
    let mut p = key.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

fn keygen(out: &Path) -> Result<(), Failure> {
    let seed = bundle::generate_seed();
    let public = bundle::public_key(&seed);
    let public_path = pub_path(out);
    // `create_new` refuses to overwrite an existing key: losing a signing key by a typo
    // would strand every deployment that trusts it. Mode 0600 from the start, so the
    // secret is never readable by others, not even for a moment.
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| {
            Failure::bad_input(format!(
                "{}: cannot create the key file: {e}",
                out.display()
            ))
        })?;
    f.write_all(format!("{}\n", to_hex(&seed)).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Failure::run_failed(format!("{}: {e}", out.display())))?;
    std::fs::write(&public_path, format!("{}\n", to_hex(&public)))
        .map_err(|e| Failure::run_failed(format!("{}: {e}", public_path.display())))?;
    println!(
        "secret key: {} (mode 0600; keep it off the vehicles)",
        out.display()
    );
    println!(
        "public key: {} = {}",
        public_path.display(),
        to_hex(&public)
    );
    Ok(())
}

struct SignArgs<'a> {
    key: &'a Path,
    app: &'a str,
    version: u64,
    label: Option<&'a str>,
    executable: &'a Path,
    files: &'a [String],
    manifest: &'a Path,
    out: &'a Path,
    expires: &'a str,
    key_doc: Option<&'a Path>,
    delta_from: Option<&'a Path>,
}

/// The manifest's `[ota]` keys into `trusted`: `trusted_keys` (every app), `[[ota.key]]`
/// (scoped) and `root_keys` (key documents only).
pub fn add_manifest_keys(
    trusted: &mut TrustedKeys,
    d: &takt::manifest::Deployment,
) -> Result<(), Failure> {
    let bad = |field: &str, e: bundle::KeyError| {
        Failure::bad_input(format!("{}: ota.{field}: {e}", d.source))
    };
    for k in &d.ota.trusted_keys {
        trusted.add(k).map_err(|e| bad("trusted_keys", e))?;
    }
    for (k, apps) in &d.ota.scoped_keys {
        trusted
            .add_scoped(k, apps.clone())
            .map_err(|e| bad("key", e))?;
    }
    for k in &d.ota.root_keys {
        trusted.add_root(k).map_err(|e| bad("root_keys", e))?;
    }
    Ok(())
}

/// A public key argument: 64 hex digits or a file holding them (KEY.pub).
fn public_arg(what: &str, t: &str) -> Result<[u8; 32], Failure> {
    let text = if t.len() == 64 && t.bytes().all(|c| c.is_ascii_hexdigit()) {
        t.to_string()
    } else {
        read_key_text(Path::new(t))?
    };
    from_hex::<32>(&text).map_err(|e| Failure::bad_input(format!("{what} {t}: {e}")))
}

fn read_key_text(path: &Path) -> Result<String, Failure> {
    let bytes = read_bounded(path, MAX_KEY_FILE_BYTES, false)?;
    String::from_utf8(bytes)
        .map_err(|_| Failure::bad_input(format!("{}: a key file holds hex text", path.display())))
}

/// Reads `path`, refusing more than `max_bytes`; shows progress for large files.
fn read_bounded(path: &Path, max_bytes: u64, progress: bool) -> Result<Vec<u8>, Failure> {
    let what = |e: std::io::Error| Failure::bad_input(format!("{}: {e}", path.display()));
    let mut f = takt::fsio::open_regular(path).map_err(what)?;
    let len = f.metadata().map_err(what)?.len();
    if len > max_bytes {
        return Err(Failure::bad_input(format!(
            "{}: {len} bytes; at most {max_bytes} bytes are allowed",
            path.display()
        )));
    }
    let bar = (progress && len >= PROGRESS_FROM_BYTES).then(|| bar(len, "reading"));
    let mut out = Vec::with_capacity(len as usize);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(what)?;
        if n == 0 {
            break;
        }
        if (out.len() + n) as u64 > max_bytes {
            return Err(Failure::bad_input(format!(
                "{}: grew past {max_bytes} bytes while being read",
                path.display()
            )));
        }
        out.extend_from_slice(&buf[..n]);
        if let Some(b) = &bar {
            b.set_position(out.len() as u64);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(out)
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec})")
    {
        b.set_style(style.progress_chars("=> "));
    }
    b.set_message(what.to_string());
    b
}

fn sign(a: &SignArgs<'_>) -> Result<(), Failure> {
    let seed = from_hex::<32>(&read_key_text(a.key)?).map_err(|reason| {
        Failure::bad_input(format!(
            "{}: not a secret key from `takt ota keygen`: {reason}",
            a.key.display()
        ))
    })?;
    let key = bundle::signing_key(&seed);
    let expires_unix_s = bundle::parse_expires(a.expires, bundle::now_unix_s())
        .map_err(|e| Failure::bad_input(format!("--expires: {e}")))?;
    let key_document = match a.key_doc {
        None => None,
        Some(path) => {
            let bytes = read_bounded(path, u64::from(keys::MAX_KEY_DOC_BYTES), false)?;
            keys::parse_unverified(&bytes)
                .map_err(|e| Failure::bad_input(format!("--key-doc {}: {e}", path.display())))?;
            Some(bytes)
        }
    };

    let d = common::load_apps(a.manifest)?.d;
    // The new timing must be schedulable before it is signed, not only when staged.
    common::plan_verified(&d)?;
    let label = a
        .label
        .map_or_else(|| a.version.to_string(), str::to_string);
    // The catalog the bundle carries (inside the signed part) is the shipped executable's
    // own declaration, obtained from it, never the signing tool's.
    let shipped = takt::catalog::read_from_executable(a.executable)
        .map_err(|e| Failure::bad_input(format!("--executable: {e}")))?;
    let fragment = Fragment::from_deployment(
        &d,
        &shipped.to_catalog(a.app),
        &shipped.layouts(),
        a.app,
        a.version,
        &label,
    )
    .map_err(|e| Failure::bad_input(format!("{}: {e}", a.manifest.display())))?;
    let exe_name = a
        .executable
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            Failure::bad_input(format!(
                "--executable {}: names no file",
                a.executable.display()
            ))
        })?;
    let exe_bytes = read_bounded(a.executable, bundle::MAX_ENTRY_BYTES, true)?;
    // A bundle carries the code, not its debug info (a release build here has tens of MB of
    // it): strip it, and keep the debug info beside the bundle under the build id.
    let exe_bytes = match super::ota_strip::inspect(&exe_bytes) {
        Some(info) if info.debug_bytes > 0 => {
            let debug_dir = with_suffix(a.out, ".debug");
            let stripped = super::ota_strip::strip(
                a.executable,
                &info,
                &debug_dir,
                &with_suffix(a.out, ".stripping"),
                bundle::MAX_ENTRY_BYTES,
            )
            .map_err(|e| Failure::bad_input(format!("--executable: {e}")))?;
            eprintln!(
                "takt ota sign: note: {} carries {} of debug info; the bundle carries it stripped ({} -> {}), the debug info is kept in {} (build id {})",
                a.executable.display(),
                super::ota_strip::mib(info.debug_bytes),
                super::ota_strip::mib(exe_bytes.len() as u64),
                super::ota_strip::mib(stripped.bytes.len() as u64),
                stripped.debug_file.display(),
                stripped.build_id
            );
            stripped.bytes
        }
        _ => exe_bytes,
    };
    // A delta is made against the old executable as a full bundle shipped it (stripped),
    // which is what the vehicle's slot holds and what staging compares hashes with.
    let delta = match a.delta_from {
        None => None,
        Some(old) => {
            let old_bytes = read_bounded(old, bundle::MAX_ENTRY_BYTES, true)?;
            let old_bytes = match super::ota_strip::inspect(&old_bytes) {
                Some(info) if info.debug_bytes > 0 => super::ota_strip::strip_debug(
                    old,
                    &with_suffix(a.out, ".stripping-base"),
                    bundle::MAX_ENTRY_BYTES,
                )
                .map_err(|e| Failure::bad_input(format!("--delta-from: {e}")))?,
                _ => old_bytes,
            };
            let d = takt::ota::delta::Delta::make(&old_bytes, &exe_bytes)
                .map_err(|e| Failure::bad_input(format!("--delta-from {}: {e}", old.display())))?;
            eprintln!(
                "takt ota sign: note: a delta bundle: the executable ({} bytes, SHA-256 {}) ships as a {}-byte patch against {} (SHA-256 {}); it stages only where that executable is installed",
                d.result_len,
                to_hex(&d.result_sha256),
                d.patch.len(),
                old.display(),
                to_hex(&d.base_sha256)
            );
            Some(d)
        }
    };
    let options = bundle::SignOptions {
        expires_unix_s: Some(expires_unix_s),
        key_document,
        delta,
    };
    let mut entries = vec![Entry {
        name: exe_name,
        mode: 0o755,
        bytes: exe_bytes,
    }];
    for spec in a.files {
        let (name, path) = spec.split_once('=').ok_or_else(|| {
            Failure::bad_input(format!(
                "--file {spec}: expected NAME=PATH, e.g. --file etc/gap.toml=./gap.toml"
            ))
        })?;
        entries.push(Entry {
            name: name.to_string(),
            mode: 0o644,
            bytes: read_bounded(Path::new(path), bundle::MAX_ENTRY_BYTES, true)?,
        });
    }
    let total: u64 = entries.iter().map(|e| e.bytes.len() as u64).sum();
    let progress = (total >= PROGRESS_FROM_BYTES).then(|| bar(total, "signing"));
    // Written beside the target and renamed, so a failed run never leaves half a bundle
    // under the bundle's name.
    let tmp = pub_tmp(a.out);
    let mut file = std::fs::File::create(&tmp)
        .map_err(|e| Failure::bad_input(format!("{}: {e}", tmp.display())))?;
    let mut w = std::io::BufWriter::new(&mut file);
    let result = bundle::sign_to(&mut w, &fragment, &entries, &key, &options, &mut |done| {
        if let Some(b) = &progress {
            b.set_position(done.min(total));
        }
    });
    let flushed = w.flush();
    drop(w);
    if let Some(b) = progress {
        b.finish_and_clear();
    }
    let finish = result
        .map_err(|e| Failure::bad_input(e.to_string()))
        .and_then(|()| flushed.map_err(|e| Failure::run_failed(format!("{}: {e}", tmp.display()))))
        .and_then(|()| {
            file.sync_all()
                .and_then(|()| std::fs::rename(&tmp, a.out))
                .map_err(|e| Failure::run_failed(format!("{}: {e}", a.out.display())))
        });
    if finish.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    finish?;
    println!(
        "{}: app `{}` version {} ({label}), {} {}, {} tasks, {} ports, signed by {}, expires {}{}",
        a.out.display(),
        a.app,
        a.version,
        entries.len(),
        if entries.len() == 1 {
            "entry"
        } else {
            "entries"
        },
        fragment.tasks.len(),
        fragment.ports.len(),
        to_hex(key.verifying_key().as_bytes()),
        bundle::format_unix_s(expires_unix_s),
        if a.key_doc.is_some() {
            ", carrying a key document"
        } else {
            ""
        }
    );
    if let Some(d) = &options.delta {
        println!(
            "  delta: {} bytes of patch for a {}-byte executable, applies to SHA-256 {}",
            d.patch.len(),
            d.result_len,
            to_hex(&d.base_sha256)
        );
    }
    Ok(())
}

fn pub_tmp(out: &Path) -> PathBuf {
    with_suffix(out, ".tmp")
}

/// `path` with `suffix` appended to its last component.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// What `takt ota inspect` found out about a bundle's trust.
struct TrustView {
    /// "verified", or why it was not checked.
    signature: String,
    /// The signer's scope and whether it covers the app (`None`: not checked).
    scope: Option<String>,
    /// The carried key document, described.
    key_doc: Option<serde_json::Value>,
    /// The installed version of the bundle's app (with --ota-dir).
    installed: Option<u64>,
    /// For a delta bundle with --ota-dir: whether the installed executable is its base.
    delta_base: Option<String>,
}

fn inspect(
    path: &Path,
    trusted_args: &[String],
    manifest: Option<&Path>,
    ota_dir: Option<&Path>,
    json: bool,
) -> Result<(), Failure> {
    let bytes = read_bounded(path, bundle::MAX_BUNDLE_BYTES, true)?;
    let mut trusted = TrustedKeys::new();
    for t in trusted_args {
        let k = public_arg("--trusted", t)?;
        trusted
            .add(&k)
            .map_err(|e| Failure::bad_input(format!("--trusted {t}: {e}")))?;
    }
    let mut state_dir = ota_dir.map(Path::to_path_buf);
    if let Some(m) = manifest {
        let d = common::load_apps(m)?.d;
        add_manifest_keys(&mut trusted, &d)?;
        if state_dir.is_none() {
            state_dir.clone_from(&d.ota.state_dir);
        }
    }
    let installed_doc = match &state_dir {
        Some(dir) if !trusted.roots().is_empty() => {
            let mut storage = takt::ota::storage::FsStorage::new(dir);
            keys::load_installed_readonly(&mut storage, trusted.roots())
                .map_err(|e| Failure::bad_input(format!("{}: {e}", dir.display())))?
        }
        _ => None,
    };
    let verify = !trusted.is_empty() || !trusted.roots().is_empty();
    let refused = |e: bundle::BundleReadError| {
        Failure::bad_input(format!("{}: refused: {e}", path.display()))
    };
    let (b, effective, new_doc) = if verify {
        let v = bundle::verify(
            &bytes,
            &trusted,
            installed_doc.as_ref(),
            bundle::now_unix_s(),
        )
        .map_err(refused)?;
        (v.bundle, Some(v.effective), v.new_key_document)
    } else {
        (
            bundle::parse_unverified(&bytes).map_err(refused)?,
            None,
            None,
        )
    };
    let scope = effective
        .as_ref()
        .and_then(|t| t.find(&b.signer))
        .map(|k| match &k.apps {
            None => format!("every app (covers `{}`)", b.fragment.app),
            Some(apps) => format!("apps {} (covers `{}`)", apps.join(", "), b.fragment.app),
        });
    let key_doc = b.key_document.as_ref().map(|raw| {
        let parsed = if trusted.roots().is_empty() {
            keys::parse_unverified(raw).map(|d| (d, "not checked (no root keys given: --manifest)"))
        } else {
            keys::parse(raw, trusted.roots())
                .map(|d| (d, "verified against the manifest's root keys"))
        };
        match parsed {
            Ok((d, how)) => {
                let mut v = key_doc_json(&d);
                v["signature"] = serde_json::json!(how);
                v["newer_than_installed"] = serde_json::json!(new_doc.is_some());
                v
            }
            Err(e) => serde_json::json!({ "error": e.to_string() }),
        }
    });
    let record = state_dir.as_ref().and_then(|dir| {
        let storage = takt::ota::storage::FsStorage::new(dir);
        takt::ota::journal::Journal::peek(&storage, &b.fragment.app)
            .ok()
            .flatten()
    });
    let installed = record.as_ref().map(|r| r.rollback_floor());
    // For a delta: does the installed slot hold the executable it applies to? (From the
    // slot's stamp; staging hashes the file itself.)
    let delta_base = match (&b.delta, &record, &state_dir) {
        (Some(d), Some(r), Some(dir)) => {
            let (slot, version) = r.running();
            let storage = takt::ota::storage::FsStorage::new(dir);
            Some(if version == 0 {
                "no installed slot (version 0 runs the manifest's executable): staging refuses the delta".to_string()
            } else {
                match takt::ota::slots::peek(&storage, &b.fragment.app, slot) {
                    Ok(stamp) => match stamp.files.first() {
                        Some((_, _, sha)) if *sha == d.base_sha256 => {
                            format!("matches installed version {version} in slot {slot}")
                        }
                        Some((_, _, sha)) => format!(
                            "installed version {version} in slot {slot} has sha256:{}: staging refuses the delta",
                            to_hex(sha)
                        ),
                        None => format!("slot {slot} holds no executable"),
                    },
                    Err(e) => format!("installed slot {slot}: {e}"),
                }
            })
        }
        _ => None,
    };
    let view = TrustView {
        signature: if verify {
            "verified".to_string()
        } else {
            "not checked (no --trusted key or --manifest given)".to_string()
        },
        scope,
        key_doc,
        installed,
        delta_base,
    };
    if json {
        println!("{}", inspect_json(&b, verify, &view));
    } else {
        print_text(path, &b, &view);
    }
    Ok(())
}

fn key_doc_json(d: &KeyDocument) -> serde_json::Value {
    serde_json::json!({
        "version": d.body.version,
        "signer": to_hex(&d.signer),
        "keys": d.body.keys.iter().map(|k| serde_json::json!({
            "public": to_hex(&k.public),
            "apps": k.apps,
        })).collect::<Vec<_>>(),
        "revoked": d.body.revoked.iter().map(|k| to_hex(k)).collect::<Vec<_>>(),
    })
}

fn keys_command(command: &OtaKeysCommand) -> Result<(), Failure> {
    match command {
        OtaKeysCommand::Sign {
            root_key,
            version,
            add,
            revoke,
            out,
        } => keys_sign(root_key, *version, add, revoke, out),
        OtaKeysCommand::Inspect {
            doc,
            manifest,
            json,
        } => keys_inspect(doc, manifest.as_deref(), *json),
        OtaKeysCommand::Install {
            doc,
            manifest,
            ota_dir,
        } => keys_install(doc, manifest, ota_dir.as_deref()),
    }
}

fn keys_sign(
    root_key: &Path,
    version: u64,
    add: &[String],
    revoke: &[String],
    out: &Path,
) -> Result<(), Failure> {
    let seed = from_hex::<32>(&read_key_text(root_key)?).map_err(|reason| {
        Failure::bad_input(format!(
            "{}: not a secret key from `takt ota keygen`: {reason}",
            root_key.display()
        ))
    })?;
    if version == 0 {
        return Err(Failure::bad_input(
            "--version 0: key document versions start at 1 (0 is the manifest's keys alone)",
        ));
    }
    let mut keys_added = Vec::new();
    for spec in add {
        let (key, apps) = match spec.split_once('=') {
            Some((k, apps)) => {
                let apps: Vec<String> = apps
                    .split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_string)
                    .collect();
                if apps.is_empty() {
                    return Err(Failure::bad_input(format!(
                        "--add {spec}: no app after `=`; write PUBKEY=app1,app2, or PUBKEY alone for every app"
                    )));
                }
                (k, Some(apps))
            }
            None => (spec.as_str(), None),
        };
        keys_added.push(DocKey {
            public: public_arg("--add", key)?,
            apps,
        });
    }
    let mut revoked = Vec::new();
    for r in revoke {
        revoked.push(public_arg("--revoke", r)?);
    }
    if let Some(k) = keys_added.iter().find(|k| revoked.contains(&k.public)) {
        return Err(Failure::bad_input(format!(
            "key {} is both added and revoked; a document does one or the other",
            to_hex(&k.public)
        )));
    }
    let body = KeyDocumentBody {
        version,
        keys: keys_added,
        revoked,
    };
    let bytes = keys::sign(&body, &bundle::signing_key(&seed))
        .map_err(|e| Failure::bad_input(e.to_string()))?;
    write_atomically(out, &bytes)?;
    println!(
        "{}: key document version {version}, {} key(s) added, {} revoked, signed by root key {}",
        out.display(),
        body.keys.len(),
        body.revoked.len(),
        to_hex(&bundle::public_key(&seed))
    );
    Ok(())
}

/// Writes `bytes` to `out` through a temporary file, fsynced and renamed.
fn write_atomically(out: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let tmp = pub_tmp(out);
    let r = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, out));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r.map_err(|e| Failure::run_failed(format!("{}: {e}", out.display())))
}

fn keys_inspect(path: &Path, manifest: Option<&Path>, json: bool) -> Result<(), Failure> {
    let bytes = read_bounded(path, u64::from(keys::MAX_KEY_DOC_BYTES), false)?;
    let (doc, how) = match manifest {
        Some(m) => {
            let d = common::load_apps(m)?.d;
            let doc = keys::parse(&bytes, &d.ota.root_keys)
                .map_err(|e| Failure::bad_input(format!("{}: refused: {e}", path.display())))?;
            (doc, "verified against the manifest's root keys")
        }
        None => (
            keys::parse_unverified(&bytes)
                .map_err(|e| Failure::bad_input(format!("{}: refused: {e}", path.display())))?,
            "not checked (no --manifest given)",
        ),
    };
    if json {
        let mut v = key_doc_json(&doc);
        v["signature"] = serde_json::json!(how);
        println!("{v}");
        return Ok(());
    }
    println!(
        "{}: key document version {}",
        path.display(),
        doc.body.version
    );
    println!("  signer:    {} (root key)", to_hex(&doc.signer));
    println!("  signature: {how}");
    for k in &doc.body.keys {
        println!(
            "  adds:      {} for {}",
            to_hex(&k.public),
            k.apps
                .as_ref()
                .map_or_else(|| "every app".to_string(), |a| a.join(", "))
        );
    }
    for k in &doc.body.revoked {
        println!("  revokes:   {}", to_hex(k));
    }
    Ok(())
}

fn keys_install(path: &Path, manifest: &Path, ota_dir: Option<&Path>) -> Result<(), Failure> {
    let d = common::load_apps(manifest)?.d;
    let dir = ota_dir
        .map(Path::to_path_buf)
        .or_else(|| d.ota.state_dir.clone())
        .ok_or_else(|| {
            Failure::bad_input(format!(
                "no state directory: give --ota-dir DIR or `[ota] state_dir` in {}",
                d.source
            ))
        })?;
    let bytes = read_bounded(path, u64::from(keys::MAX_KEY_DOC_BYTES), false)?;
    let doc = keys::parse(&bytes, &d.ota.root_keys)
        .map_err(|e| Failure::bad_input(format!("{}: refused: {e}", path.display())))?;
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::run_failed(format!("{}: {e}", dir.display())))?;
    // The supervisor holds this lock for its life: a key document is never written under
    // a running supervisor's feet (it takes one with a bundle instead).
    let _lock = takt::ota::lock::StateLock::acquire(&dir, "takt ota keys install")
        .map_err(|e| Failure::run_failed(e.to_string()))?;
    let mut storage = takt::ota::storage::FsStorage::new(&dir);
    // Every copy unreadable is what this command repairs: the document is root-signed,
    // so it is installed, with the damage reported (its version cannot be compared).
    let installed = match keys::load_installed(&mut storage, &d.ota.root_keys) {
        Ok((installed, notes)) => {
            for n in notes {
                eprintln!("takt ota keys install: {n}");
            }
            installed
        }
        Err(e) => {
            eprintln!("takt ota keys install: {}: {e}", dir.display());
            None
        }
    };
    if let Some(i) = &installed {
        if doc.body.version < i.body.version {
            return Err(Failure::bad_input(format!(
                "{}: refused: key document version {} is older than the installed version {}; key documents only move forward",
                path.display(),
                doc.body.version,
                i.body.version
            )));
        }
        if doc.body.version == i.body.version {
            if doc.body == i.body {
                println!(
                    "{}: key document version {} is already installed",
                    dir.display(),
                    i.body.version
                );
                return Ok(());
            }
            return Err(Failure::bad_input(format!(
                "{}: refused: another key document with version {} is installed; one version, one document",
                path.display(),
                doc.body.version
            )));
        }
    }
    keys::install(&mut storage, &doc)
        .map_err(|e| Failure::run_failed(format!("{}: {e}", dir.display())))?;
    println!(
        "{}: key document version {} installed ({} key(s) added, {} revoked)",
        dir.display(),
        doc.body.version,
        doc.body.keys.len(),
        doc.body.revoked.len()
    );
    Ok(())
}

fn direction(d: PortDirection) -> &'static str {
    match d {
        PortDirection::Write => "writes",
        PortDirection::Read => "reads",
    }
}

fn print_text(path: &Path, b: &Bundle, view: &TrustView) {
    let f = &b.fragment;
    println!(
        "{}: app `{}` version {} ({})",
        path.display(),
        f.app,
        f.version,
        f.version_label
    );
    if let Some(v) = view.installed {
        println!("  installed: version {v} (anti-rollback: the bundle must be newer)");
    }
    println!("  signer:    {}", to_hex(&b.signer));
    println!("  signature: {}", view.signature);
    println!(
        "  scope:     {}",
        view.scope.as_deref().unwrap_or("not checked")
    );
    let now = bundle::now_unix_s();
    println!(
        "  expires:   {}{}",
        bundle::format_unix_s(b.expires_unix_s),
        if now > b.expires_unix_s {
            " (EXPIRED)"
        } else {
            ""
        }
    );
    match &view.key_doc {
        None => println!("  key doc:   none"),
        Some(d) if d.get("error").is_some() => println!("  key doc:   {}", d["error"]),
        Some(d) => {
            println!(
                "  key doc:   version {} signed by root key {} ({})",
                d["version"],
                d["signer"].as_str().unwrap_or(""),
                d["signature"].as_str().unwrap_or("")
            );
            for k in d["keys"].as_array().into_iter().flatten() {
                println!(
                    "    adds     {} for {}",
                    k["public"].as_str().unwrap_or(""),
                    k["apps"].as_array().map_or_else(
                        || "every app".to_string(),
                        |a| a
                            .iter()
                            .filter_map(|x| x.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                );
            }
            for k in d["revoked"].as_array().into_iter().flatten() {
                println!("    revokes  {}", k.as_str().unwrap_or(""));
            }
        }
    }
    println!("  digest:    sha256:{}", to_hex(&b.digest));
    println!(
        "  catalog:   {} task(s), {} port(s), {} entr{}",
        f.tasks.len(),
        f.ports.len(),
        b.entries.len(),
        if b.entries.len() == 1 { "y" } else { "ies" }
    );
    match &b.delta {
        None => println!("  payload:   full (the executable's bytes)"),
        Some(d) => {
            println!(
                "  payload:   delta: the executable is a {}-byte patch (bsdiff 4) producing {} bytes",
                d.patch.len(),
                d.result_len
            );
            println!(
                "    base:    sha256:{} (the installed executable it applies to){}",
                to_hex(&d.base_sha256),
                view.delta_base
                    .as_ref()
                    .map_or_else(String::new, |v| format!("; {v}"))
            );
            println!("    result:  sha256:{}", to_hex(&d.result_sha256));
        }
    }
    println!("  tasks:");
    for t in &f.tasks {
        println!(
            "    {:<16} period {:>10}  offset {:>10}  budget {:>10}  let {:>10}  core {}",
            t.name,
            takt::time::format_ns(t.period_ns),
            takt::time::format_ns(t.offset_ns),
            takt::time::format_ns(t.budget_ns),
            takt::time::format_ns(t.let_ns),
            t.core
        );
    }
    println!("  ports:");
    for p in &f.ports {
        println!(
            "    {} {:<16} {}",
            direction(p.direction),
            p.topic,
            p.layout
        );
    }
    println!("  entries:");
    for (i, e) in b.entries.iter().enumerate() {
        match b.delta.as_ref().filter(|_| i == 0) {
            Some(d) => println!(
                "    {:o} {:>12} {} (delta: {}-byte patch)",
                e.mode,
                d.result_len,
                e.name,
                d.patch.len()
            ),
            None => println!("    {:o} {:>12} {}", e.mode, e.bytes.len(), e.name),
        }
    }
}

fn inspect_json(b: &Bundle, verified: bool, view: &TrustView) -> serde_json::Value {
    let f = &b.fragment;
    serde_json::json!({
        "app": f.app,
        "version": f.version,
        "version_label": f.version_label,
        "installed_version": view.installed,
        "signer": to_hex(&b.signer),
        "signature_verified": verified,
        "scope": view.scope,
        "expires": bundle::format_unix_s(b.expires_unix_s),
        "expires_unix_s": b.expires_unix_s,
        "expired": bundle::now_unix_s() > b.expires_unix_s,
        "key_document": view.key_doc,
        "digest_sha256": to_hex(&b.digest),
        "tasks": f.tasks.iter().map(|t| serde_json::json!({
            "name": t.name,
            "period_ns": t.period_ns,
            "offset_ns": t.offset_ns,
            "budget_ns": t.budget_ns,
            "let_ns": t.let_ns,
            "core": t.core,
        })).collect::<Vec<_>>(),
        "ports": f.ports.iter().map(|p| serde_json::json!({
            "topic": p.topic,
            "direction": direction(p.direction),
            "type": p.type_name,
            "layout": {
                "name": p.layout.name,
                "size": p.layout.size,
                "align": p.layout.align,
                "hash": format!("{:016x}", p.layout.hash),
            },
        })).collect::<Vec<_>>(),
        "delta": b.delta.as_ref().map(|d| serde_json::json!({
            "base_sha256": to_hex(&d.base_sha256),
            "result_sha256": to_hex(&d.result_sha256),
            "result_bytes": d.result_len,
            "patch_bytes": d.patch.len(),
            "installed_base": view.delta_base,
        })),
        "entries": b.entries.iter().enumerate().map(|(i, e)| {
            let delta = b.delta.as_ref().filter(|_| i == 0);
            serde_json::json!({
                "name": e.name,
                "mode": format!("{:o}", e.mode),
                "bytes": delta.map_or(e.bytes.len() as u64, |d| d.result_len),
                "patch_bytes": delta.map(|d| d.patch.len()),
            })
        }).collect::<Vec<_>>(),
    })
}

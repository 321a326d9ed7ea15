//! `takt ota keygen | sign | inspect`: make signing keys, build signed bundles, look into
//! them. Staging and activation go through the supervisor and are not here.
//!
//! Thin: the bundle format, signing and verification live in `takt::ota::bundle`.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use takt::ota::bundle::{self, Bundle, Entry, Fragment, PortDirection, TrustedKeys};
use takt::ota::{from_hex, to_hex};

use crate::cli::OtaCommand;
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
        } => sign(&SignArgs {
            key,
            app,
            version: *version,
            label: label.as_deref(),
            executable,
            files,
            manifest,
            out,
        }),
        OtaCommand::Inspect {
            bundle,
            trusted,
            json,
        } => inspect(bundle, trusted, *json),
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
    let mut entries = vec![Entry {
        name: exe_name,
        mode: 0o755,
        bytes: read_bounded(a.executable, bundle::MAX_ENTRY_BYTES, true)?,
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
    let result = bundle::sign_to(&mut w, &fragment, &entries, &key, &mut |done| {
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
        "{}: app `{}` version {} ({label}), {} entries, {} tasks, {} ports, signed by {}",
        a.out.display(),
        a.app,
        a.version,
        entries.len(),
        fragment.tasks.len(),
        fragment.ports.len(),
        to_hex(key.verifying_key().as_bytes())
    );
    Ok(())
}

fn pub_tmp(out: &Path) -> PathBuf {
    let mut p = out.as_os_str().to_owned();
    p.push(".tmp");
    PathBuf::from(p)
}

fn inspect(path: &Path, trusted_args: &[String], json: bool) -> Result<(), Failure> {
    let bytes = read_bounded(path, bundle::MAX_BUNDLE_BYTES, true)?;
    let mut trusted = TrustedKeys::new();
    for t in trusted_args {
        // A key is either 64 hex digits or a file holding them (KEY.pub).
        let text = if t.len() == 64 && t.bytes().all(|c| c.is_ascii_hexdigit()) {
            t.clone()
        } else {
            read_key_text(Path::new(t))?
        };
        trusted
            .add_hex(&text)
            .map_err(|e| Failure::bad_input(format!("--trusted {t}: {e}")))?;
    }
    let verify = !trusted.is_empty();
    let b = if verify {
        bundle::read(&bytes, &trusted)
    } else {
        bundle::parse_unverified(&bytes)
    }
    .map_err(|e| Failure::bad_input(format!("{}: refused: {e}", path.display())))?;
    let signature = if verify {
        "verified"
    } else {
        "not checked (no --trusted key given)"
    };
    if json {
        println!("{}", inspect_json(&b, verify));
    } else {
        print_text(path, &b, signature);
    }
    Ok(())
}

fn direction(d: PortDirection) -> &'static str {
    match d {
        PortDirection::Write => "writes",
        PortDirection::Read => "reads",
    }
}

fn print_text(path: &Path, b: &Bundle, signature: &str) {
    let f = &b.fragment;
    println!(
        "{}: app `{}` version {} ({})",
        path.display(),
        f.app,
        f.version,
        f.version_label
    );
    println!("  signer:    {}", to_hex(&b.signer));
    println!("  signature: {signature}");
    println!("  digest:    sha256:{}", to_hex(&b.digest));
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
    for e in &b.entries {
        println!("    {:o} {:>12} {}", e.mode, e.bytes.len(), e.name);
    }
}

fn inspect_json(b: &Bundle, verified: bool) -> serde_json::Value {
    let f = &b.fragment;
    serde_json::json!({
        "app": f.app,
        "version": f.version,
        "version_label": f.version_label,
        "signer": to_hex(&b.signer),
        "signature_verified": verified,
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
        "entries": b.entries.iter().map(|e| serde_json::json!({
            "name": e.name,
            "mode": format!("{:o}", e.mode),
            "bytes": e.bytes.len(),
        })).collect::<Vec<_>>(),
    })
}

//! Part 7, OTA bundle size: the planning app's version 2 as a full bundle and as a delta
//! bundle against version 0 (issue #15.3).
//!
//! Owns: signing both through this very binary, as an integrator does (`takt ota keygen`,
//! `takt ota sign`, `takt ota sign --delta-from`), with a throw-away key in a temporary
//! directory, and reporting the two file sizes and their ratio. The executables are the
//! demo's `acc-planning` (v0) and `acc-planning-v2`, found beside this `takt` binary (the
//! same `target/release` a `cargo build --release` fills); when either is missing, or the
//! ACC manifest does not load, it is a SKIPPED line, not a failure. Sizes are not timings:
//! nothing here depends on the machine's load.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::report::{Report, Row};
use super::Env;

pub const PART: &str = "ota";

pub const KEYS: &[&str] = &["ota_full_bytes", "ota_delta_bytes", "ota_delta_ratio"];

pub fn run(env: &Env, r: &mut Report) {
    env.step("planning v2: full bundle and delta against v0");
    let takt = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return env.fail(r, PART, format!("cannot find the takt binary: {e}")),
    };
    let dir = takt.parent().map(Path::to_path_buf).unwrap_or_default();
    let v0 = dir.join("acc-planning");
    let v2 = dir.join("acc-planning-v2");
    if let Some(missing) = [&v0, &v2].into_iter().find(|p| !p.is_file()) {
        return env.skip(
            r,
            PART,
            format!(
                "{} is not built beside takt (`cargo build --release -p takt-acc`)",
                missing.display()
            ),
        );
    }
    let work = std::env::temp_dir().join(format!("{}-ota", env.namespace));
    let result = measure(&takt, &env.acc_manifest, &work, &v0, &v2);
    let _ = std::fs::remove_dir_all(&work);
    let (full, delta) = match result {
        Ok(sizes) => sizes,
        Err(Outcome::Skip(why)) => return env.skip(r, PART, why),
        Err(Outcome::Fail(why)) => return env.fail(r, PART, why),
    };
    r.set_count("ota_full_bytes", full);
    r.set_count("ota_delta_bytes", delta);
    let ratio = (full > 0).then(|| delta as f64 / full as f64);
    if let Some(x) = ratio {
        r.set("ota_delta_ratio", x);
    }
    r.row(
        Row::new(PART, "planning v2 bundle, delta against v0 vs full")
            .takt(match ratio {
                Some(x) => format!("{delta} B ({:.3}%)", x * 100.0),
                None => format!("{delta} B"),
            })
            .baseline(format!("{full} B"))
            .ratio(ratio),
    );
}

enum Outcome {
    Skip(String),
    Fail(String),
}

/// Signs v2 in full and as a delta against v0 in `work`; returns both file sizes.
fn measure(
    takt: &Path,
    manifest: &Path,
    work: &Path,
    v0: &Path,
    v2: &Path,
) -> Result<(u64, u64), Outcome> {
    std::fs::create_dir_all(work).map_err(|e| Outcome::Fail(format!("{}: {e}", work.display())))?;
    let key = work.join("bench.key");
    takt_cli(
        takt,
        &[os("ota"), os("keygen"), os("--out"), key.as_os_str()],
    )?;
    let sign = |out: &PathBuf, delta_from: Option<&Path>| {
        let mut args = vec![
            os("ota"),
            os("sign"),
            os("--key"),
            key.as_os_str(),
            os("--app"),
            os("planning"),
            os("--version"),
            os("2"),
            os("--executable"),
            v2.as_os_str(),
            os("--manifest"),
            manifest.as_os_str(),
            os("--out"),
            out.as_os_str(),
        ];
        if let Some(base) = delta_from {
            args.extend([os("--delta-from"), base.as_os_str()]);
        }
        takt_cli(takt, &args)?;
        std::fs::metadata(out)
            .map(|m| m.len())
            .map_err(|e| Outcome::Fail(format!("{}: {e}", out.display())))
    };
    let full = sign(&work.join("planning-2.takt"), None)?;
    let delta = sign(&work.join("planning-2-delta.takt"), Some(v0))?;
    Ok((full, delta))
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Runs `takt args`; exit code 2 (bad input: the manifest or an executable) is a skip.
fn takt_cli(takt: &Path, args: &[&OsStr]) -> Result<(), Outcome> {
    let out: Output = Command::new(takt)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Outcome::Fail(format!("cannot start takt: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let words: Vec<_> = args.iter().take(2).map(|a| a.to_string_lossy()).collect();
    let why = format!(
        "takt {}: {}",
        words.join(" "),
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("")
    );
    if out.status.code() == Some(2) {
        Err(Outcome::Skip(format!(
            "{why} (are the apps built? `cargo build --release`)"
        )))
    } else {
        Err(Outcome::Fail(why))
    }
}

//! Debug info out of OTA bundles: `takt ota sign` ships a stripped executable and keeps
//! its debug info beside the bundle, named by the executable's build id.
//!
//! Owns: finding out whether an app executable carries debug sections (ELF `.debug_*`,
//! read with the `object` crate, no code run), its GNU build id, and splitting it with
//! binutils' `objcopy` into the stripped executable the bundle carries and a debug file
//! (`BUNDLE.debug/<build-id>.debug`) that symbolizers find by the build id the stripped
//! executable still has. It never changes the code: `--strip-debug` removes only debug
//! sections, so the stripped executable runs and declares its catalog exactly as before.
//! An executable that cannot be stripped here (no `objcopy`, no build id) is refused with
//! what to do, never shipped fat by surprise.

use std::path::{Path, PathBuf};
use std::process::Command;

use object::{Object, ObjectSection};

/// What an executable carries besides code.
#[derive(Debug, PartialEq, Eq)]
pub struct DebugInfo {
    /// Bytes of `.debug_*` sections in the file.
    pub debug_bytes: u64,
    /// The GNU build id, lowercase hex.
    pub build_id: Option<String>,
}

/// Reads `bytes` as an object file; `None` for a file that is no ELF object (a script:
/// nothing to strip).
pub fn inspect(bytes: &[u8]) -> Option<DebugInfo> {
    let file = object::File::parse(bytes).ok()?;
    let debug_bytes = file
        .sections()
        // Debug sections the loader never maps (`.debug_gdb_scripts` is loaded: code
        // refers to it, and stripping keeps it).
        .filter(|s| {
            let named = s
                .name()
                .is_ok_and(|n| n.starts_with(".debug_") || n.starts_with(".zdebug_"));
            let loaded = matches!(
                s.flags(),
                object::SectionFlags::Elf { sh_flags } if sh_flags & u64::from(object::elf::SHF_ALLOC) != 0
            );
            named && !loaded
        })
        .map(|s| s.file_range().map_or(0, |(_, len)| len))
        .sum();
    let build_id = file
        .build_id()
        .ok()
        .flatten()
        .map(|id| id.iter().map(|b| format!("{b:02x}")).collect());
    Some(DebugInfo {
        debug_bytes,
        build_id,
    })
}

/// The executable stripped, and where its debug info went.
pub struct Stripped {
    pub bytes: Vec<u8>,
    pub debug_file: PathBuf,
    pub build_id: String,
}

/// Splits `exe` (which carries debug info, see [`inspect`]) into a stripped copy and
/// `debug_dir/<build-id>.debug`. `work` is a scratch path for the stripped copy.
pub fn strip(
    exe: &Path,
    info: &DebugInfo,
    debug_dir: &Path,
    work: &Path,
    max_bytes: u64,
) -> Result<Stripped, String> {
    let Some(build_id) = info.build_id.clone() else {
        return Err(format!(
            "{} carries {} of debug info but no GNU build id, so its debug info could not be found again once stripped; link it with a build id (`-C link-arg=-Wl,--build-id`) or strip it yourself (`objcopy --strip-debug`)",
            exe.display(),
            mib(info.debug_bytes)
        ));
    };
    std::fs::create_dir_all(debug_dir).map_err(|e| format!("{}: {e}", debug_dir.display()))?;
    let debug_file = debug_dir.join(format!("{build_id}.debug"));
    objcopy(&["--only-keep-debug"], exe, &debug_file)?;
    let bytes = strip_debug(exe, work, max_bytes)?;
    match inspect(&bytes) {
        Some(s) if s.build_id.as_deref() == Some(build_id.as_str()) => {}
        other => {
            return Err(format!(
                "objcopy --strip-debug left {} unexpected: {other:?}",
                exe.display()
            ))
        }
    }
    Ok(Stripped {
        bytes,
        debug_file,
        build_id,
    })
}

/// `exe` without its debug sections, as [`strip`] ships it, without keeping the debug info:
/// for the base of a delta, whose debug info went beside its own bundle. `objcopy` is
/// deterministic, so the same executable strips to the same bytes the vehicle installed.
pub fn strip_debug(exe: &Path, work: &Path, max_bytes: u64) -> Result<Vec<u8>, String> {
    objcopy(&["--strip-debug"], exe, work)?;
    let bytes =
        takt::fsio::read_bounded(work, max_bytes).map_err(|e| format!("{}: {e}", work.display()));
    let _ = std::fs::remove_file(work);
    let bytes = bytes?;
    match inspect(&bytes) {
        Some(s) if s.debug_bytes == 0 => Ok(bytes),
        other => Err(format!(
            "objcopy --strip-debug left {} unexpected: {other:?}",
            exe.display()
        )),
    }
}

fn objcopy(how: &[&str], from: &Path, to: &Path) -> Result<(), String> {
    let out = Command::new("objcopy")
        .args(how)
        .arg(from)
        .arg(to)
        .output()
        .map_err(|e| {
            format!(
                "cannot run objcopy ({e}) to take the debug info out of {}: install binutils, or strip it yourself (`objcopy --strip-debug`)",
                from.display()
            )
        })?;
    if !out.status.success() {
        return Err(format!(
            "objcopy {} {} failed ({}): {}",
            how.join(" "),
            from.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// `bytes` in MiB, one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_is_read_and_a_script_is_no_object() {
        let me = std::env::current_exe().expect("test binary");
        let bytes = std::fs::read(&me).expect("read");
        let info = inspect(&bytes).expect("an ELF object");
        // The workspace builds with debug = 1: the test binary has debug sections.
        assert!(info.debug_bytes > 0, "{info:?}");
        assert!(inspect(b"#!/bin/sh\necho hi\n").is_none());
    }
}

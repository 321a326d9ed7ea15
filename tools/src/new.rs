//! `takt new NAME [--dir DIR] [--takt PATH]`: writes a ready app crate `DIR/NAME`, outside
//! any workspace: an executable with an example task pair, a manifest beside it that names
//! that executable, and a README with the commands. `cargo build --release` in it, then
//! `takt check|plan|run NAME.toml` work with this very binary.
//!
//! `--takt` is the path of the `takt` library crate the app builds against; by default the
//! runtime of the source tree this binary was built from, so no registry is needed. The
//! source tree's `Cargo.lock` is copied too, so the app builds with the dependency versions
//! takt was tested with (cargo drops what the app does not use).

use std::path::{Path, PathBuf};

use crate::common::Failure;

const MAIN_RS: &str = include_str!("new_app/main.rs.tmpl");
const CARGO_TOML: &str = include_str!("new_app/Cargo.toml.tmpl");
const MANIFEST: &str = include_str!("new_app/manifest.toml.tmpl");
const README: &str = include_str!("new_app/README.md.tmpl");

/// Where this binary's source tree keeps the runtime crate.
fn default_runtime() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../runtime")
}

/// An app name is a crate name, an executable name and a deployment name at once.
fn name_problem(name: &str) -> Option<&'static str> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Some("it is empty"),
        Some(c) if !c.is_ascii_lowercase() => return Some("it must start with a lowercase letter"),
        _ => {}
    }
    if name.len() > 64 {
        return Some("it is longer than 64 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        return Some("only lowercase letters, digits, `_` and `-` are allowed");
    }
    if name == "takt" || name == "test" || name == "core" || name == "std" {
        return Some("it is reserved (it would clash with a crate the app uses)");
    }
    None
}

pub fn new(name: &str, dir: &Path, takt: Option<&Path>) -> Result<(), Failure> {
    if let Some(why) = name_problem(name) {
        return Err(Failure::bad_input(format!(
            "takt new: `{name}` is not a usable app name: {why}"
        )));
    }
    let runtime = takt.map_or_else(default_runtime, Path::to_path_buf);
    let runtime = std::fs::canonicalize(&runtime).map_err(|e| {
        Failure::bad_input(format!(
            "takt new: the takt runtime crate {}: {e}; pass --takt PATH (the `runtime/` directory of a takt source tree)",
            runtime.display()
        ))
    })?;
    let is_takt = std::fs::read_to_string(runtime.join("Cargo.toml"))
        .map(|t| t.lines().any(|l| l.trim() == "name = \"takt\""))
        .unwrap_or(false);
    if !is_takt {
        return Err(Failure::bad_input(format!(
            "takt new: {} is not the takt runtime crate (no Cargo.toml with name = \"takt\"); pass --takt PATH",
            runtime.display()
        )));
    }
    let root = dir.join(name);
    if root.exists() {
        return Err(Failure::bad_input(format!(
            "takt new: {} exists already; choose another NAME or --dir",
            root.display()
        )));
    }
    let cores = crate_cores();
    let sink_core = if cores.len() > 1 { "1" } else { "0" };
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{takt}}", &runtime.display().to_string())
            .replace("{{cores}}", &cores.join(", "))
            .replace("{{sink_core}}", sink_core)
    };
    let write = |rel: &str, text: &str| -> Result<(), Failure> {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                Failure::run_failed(format!("takt new: cannot create {}: {e}", parent.display()))
            })?;
        }
        std::fs::write(&path, text).map_err(|e| {
            Failure::run_failed(format!("takt new: cannot write {}: {e}", path.display()))
        })
    };
    write("Cargo.toml", &fill(CARGO_TOML))?;
    write("src/main.rs", &fill(MAIN_RS))?;
    write(&format!("{name}.toml"), &fill(MANIFEST))?;
    write("README.md", &fill(README))?;
    write(".gitignore", "/target\n")?;
    if let Ok(lock) = std::fs::read_to_string(runtime.join("../Cargo.lock")) {
        write("Cargo.lock", &lock)?;
    }
    println!("created app `{name}` in {}", root.display());
    println!("  cd {}", root.display());
    println!("  cargo build --release");
    println!("  takt check {name}.toml && takt plan {name}.toml");
    println!("  takt run {name}.toml --clock sim --duration 2s");
    Ok(())
}

/// The cores the example deployment uses: two when the machine has them.
fn crate_cores() -> Vec<&'static str> {
    if takt::manifest::available_cores() > 1 {
        vec!["0", "1"]
    } else {
        vec!["0"]
    }
}

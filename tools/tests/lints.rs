//! The unsafe and documentation rules hold by construction, not by discipline: every
//! workspace member inherits `[workspace.lints]` (which denies undocumented `unsafe` blocks,
//! `unsafe` operations in `unsafe fn` without a block, and missing `# Safety` sections), and
//! every crate root outside `runtime/` (libraries, binaries, tests, examples, the app
//! template `takt new` writes, the fault-injection app the tests build) denies `unsafe`.
#![deny(unsafe_code)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read_toml(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn members() -> Vec<String> {
    let ws = read_toml(&root().join("Cargo.toml"));
    ws["workspace"]["members"]
        .as_array()
        .expect("workspace.members is a list")
        .iter()
        .map(|m| m.as_str().expect("a member is a path").to_string())
        .collect()
}

#[test]
fn the_workspace_denies_undocumented_and_unscoped_unsafe() {
    let ws = read_toml(&root().join("Cargo.toml"));
    let lints = ws["workspace"]
        .get("lints")
        .and_then(|l| l.as_table())
        .expect("[workspace.lints] exists");
    let level = |group: &str, lint: &str| -> Option<String> {
        let v = lints.get(group)?.as_table()?.get(lint)?;
        v.as_str()
            .map(str::to_string)
            .or_else(|| v.get("level")?.as_str().map(str::to_string))
    };
    for (group, lint) in [
        ("rust", "unsafe_op_in_unsafe_fn"),
        ("clippy", "undocumented_unsafe_blocks"),
        ("clippy", "missing_safety_doc"),
    ] {
        assert_eq!(
            level(group, lint).as_deref(),
            Some("deny"),
            "[workspace.lints.{group}] {lint} must be \"deny\""
        );
    }
}

#[test]
fn every_member_inherits_the_workspace_lints() {
    let members = members();
    assert!(
        members.len() >= 5,
        "the workspace lists its members: {members:?}"
    );
    for m in members {
        let path = root().join(&m).join("Cargo.toml");
        let t = read_toml(&path);
        let inherits = t
            .get("lints")
            .and_then(|l| l.get("workspace"))
            .and_then(|w| w.as_bool());
        assert_eq!(
            inherits,
            Some(true),
            "{}: needs `[lints] workspace = true`",
            path.display()
        );
    }
}

/// The crate roots under `dir`: `src/lib.rs`, `src/main.rs`, `src/bin/*.rs`, and the
/// top-level `.rs` files of `tests/`, `examples/` and `benches/`.
fn crate_roots(dir: &Path) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    for f in ["src/lib.rs", "src/main.rs"] {
        if dir.join(f).is_file() {
            roots.push(dir.join(f));
        }
    }
    for sub in ["src/bin", "tests", "examples", "benches"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "rs") && p.is_file() {
                roots.push(p);
            }
        }
    }
    roots
}

fn denies_unsafe(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim();
        l == "#![deny(unsafe_code)]" || l == "#![forbid(unsafe_code)]"
    })
}

#[test]
fn every_crate_root_outside_the_runtime_denies_unsafe() {
    let mut dirs: Vec<PathBuf> = members()
        .into_iter()
        .filter(|m| m != "runtime")
        .map(|m| root().join(m))
        .collect();
    // Built by the tests and by `takt new`, outside the workspace.
    dirs.push(root().join("tools/tests/fault_app"));
    let mut roots: Vec<PathBuf> = dirs.iter().flat_map(|d| crate_roots(d)).collect();
    roots.push(root().join("tools/src/new_app/main.rs.tmpl"));
    assert!(
        roots.len() >= 20,
        "the scan finds the crate roots: {roots:?}"
    );
    let missing: Vec<String> = roots
        .iter()
        .filter(|p| {
            let text =
                std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            !denies_unsafe(&text)
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "unsafe code belongs in runtime/ only; these crate roots lack #![deny(unsafe_code)]: {missing:?}"
    );
}

#[test]
fn the_scan_tells_a_root_that_denies_from_one_that_does_not() {
    assert!(denies_unsafe(
        "//! doc\n#![deny(unsafe_code)]\nfn main() {}\n"
    ));
    assert!(denies_unsafe("#![forbid(unsafe_code)]\n"));
    assert!(!denies_unsafe(
        "//! #![deny(unsafe_code)] in a comment\nfn main() {}\n"
    ));
    assert!(!denies_unsafe("#![allow(unsafe_code)]\n"));
}

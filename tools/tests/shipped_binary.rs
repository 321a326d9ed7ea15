//! The `takt` binary as `cargo build --release` ships it carries no test hook (issue #12.11):
//! neither the environment variable that makes the supervisor SIGKILL itself
//! (`TAKT_OTA_KILL_AT`) nor the counting global allocator of `takt bench`.
//!
//! The binary the other tests run is built with the `test-hooks` feature (a dev-dependency
//! turns it on), so this test builds the shipped one with cargo into its own target
//! directory (`target/shipped`, never the directory the other tests run binaries from) and
//! reads its bytes. A first build takes minutes; later ones only relink what changed.
#![deny(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A build from nothing on a slow shared host; catches a hung cargo, nothing else.
const BUILD_TIMEOUT: Duration = Duration::from_secs(3600);

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tools/ is in the workspace")
        .to_path_buf()
}

/// Builds `takt` as shipped and returns the executable's path. The README's test command
/// has just built the workspace as `cargo build --release` does and hands that binary over
/// in `TAKT_SHIPPED_BINARY` (a copy made before `cargo test` rebuilt `target/release/takt`
/// with the hooks), which saves a second build of everything.
fn shipped_takt() -> PathBuf {
    if let Some(p) = std::env::var_os("TAKT_SHIPPED_BINARY").map(PathBuf::from) {
        assert!(
            p.is_file(),
            "TAKT_SHIPPED_BINARY={} is no file",
            p.display()
        );
        return p;
    }
    let target = workspace().join("target").join("shipped");
    let mut child = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "takt-cli", "--bin", "takt"])
        .arg("--target-dir")
        .arg(&target)
        .current_dir(workspace())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cargo runs");
    let until = Instant::now() + BUILD_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(200)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("cargo build --release did not end within {BUILD_TIMEOUT:?}");
            }
        }
    };
    assert!(
        status.success(),
        "cargo build --release -p takt-cli: {status}"
    );
    let exe = target.join("release").join("takt");
    assert!(exe.is_file(), "{} after the build", exe.display());
    exe
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn bytes_of(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn the_shipped_binary_has_no_kill_hook_and_no_counting_allocator() {
    // The binary these tests run has both hooks: the markers below are what they leave.
    let tested = bytes_of(Path::new(env!("CARGO_BIN_EXE_takt")));
    assert!(
        contains(&tested, "TAKT_OTA_KILL_AT"),
        "the test build reads TAKT_OTA_KILL_AT (the marker this test looks for)"
    );
    // The static `counting_allocator!` declares; its name is in the debug information
    // (`[profile.release] debug = 1`).
    assert!(
        contains(&tested, "TAKT_COUNTING_ALLOCATOR"),
        "the test build installs the counting allocator (`TAKT_COUNTING_ALLOCATOR`, the marker this test looks for)"
    );

    let shipped = shipped_takt();
    let bytes = bytes_of(&shipped);
    assert!(
        !contains(&bytes, "TAKT_OTA_KILL_AT"),
        "{} still names TAKT_OTA_KILL_AT: a shipped supervisor must not kill itself on an environment variable",
        shipped.display()
    );
    assert!(
        !contains(&bytes, "TAKT_COUNTING_ALLOCATOR"),
        "{} installs the counting allocator: it must not wrap every verb of a shipped binary",
        shipped.display()
    );
}

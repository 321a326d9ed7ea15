//! `takt ota keygen | sign | inspect` as an integrator uses them: key files and their
//! modes, a signed bundle of an ACC app, verification and refusal with the reason.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn takt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_takt"))
        .args(args)
        .output()
        .expect("takt runs")
}

fn ok(args: &[&str]) -> String {
    let out = takt(args);
    assert!(
        out.status.success(),
        "takt {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command that must be refused with exit 2; returns its stderr.
fn refused(args: &[&str]) -> String {
    let out = takt(args);
    assert_eq!(out.status.code(), Some(2), "takt {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn manifest() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../config/acc.toml")
        .display()
        .to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

#[test]
fn keygen_sign_inspect_and_refusals() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("fleet.key");
    let other = dir.path().join("other.key");
    ok(&["ota", "keygen", "--out", s(&key)]);
    ok(&["ota", "keygen", "--out", s(&other)]);
    let mode = std::fs::metadata(&key).expect("key").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the secret key is private");
    let public = std::fs::read_to_string(dir.path().join("fleet.key.pub")).expect("pub");
    assert_eq!(public.trim().len(), 64);
    let err = refused(&["ota", "keygen", "--out", s(&key)]);
    assert!(err.contains("exists"), "{err}");

    // A real app executable: the bundle's catalog is taken from it (`--takt-catalog`). It is
    // built with the workspace (`cargo build --release --workspace`) before the tests run.
    let exe = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/acc-planning-v2");
    assert!(exe.exists(), "{} is built before the tests", exe.display());
    // Bytes that are no takt app are refused: the catalog comes from the executable.
    let fake = dir.path().join("planner-v2");
    std::fs::write(&fake, vec![0x7fu8; 100_000]).expect("exe");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let err = refused(&[
        "ota",
        "sign",
        "--key",
        s(&key),
        "--app",
        "planning",
        "--version",
        "2",
        "--executable",
        s(&fake),
        "--manifest",
        &manifest(),
        "--out",
        s(&dir.path().join("fake.takt")),
    ]);
    assert!(err.contains("--executable"), "{err}");
    assert!(!dir.path().join("fake.takt").exists());
    let policy = dir.path().join("gap.toml");
    std::fs::write(&policy, "time_gap_s = 1.8\n").expect("file");
    let bundle = dir.path().join("planning-2.takt");
    let file_arg = format!("etc/gap.toml={}", s(&policy));
    let out = ok(&[
        "ota",
        "sign",
        "--key",
        s(&key),
        "--app",
        "planning",
        "--version",
        "2",
        "--label",
        "2.0.0-gap18",
        "--executable",
        s(&exe),
        "--file",
        &file_arg,
        "--manifest",
        &manifest(),
        "--out",
        s(&bundle),
    ]);
    assert!(out.contains("version 2"), "{out}");

    let pubfile = dir.path().join("fleet.key.pub");
    let text = ok(&["ota", "inspect", s(&bundle), "--trusted", s(&pubfile)]);
    assert!(text.contains("signature: verified"), "{text}");
    assert!(text.contains("planner"), "{text}");
    assert!(text.contains("etc/gap.toml"), "{text}");

    let json = ok(&[
        "ota",
        "inspect",
        s(&bundle),
        "--json",
        "--trusted",
        public.trim(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(v["app"], "planning");
    assert_eq!(v["version"], 2);
    assert_eq!(v["version_label"], "2.0.0-gap18");
    assert_eq!(v["signature_verified"], true);
    assert_eq!(v["entries"][0]["name"], "acc-planning-v2");
    assert_eq!(v["entries"][0]["mode"], "755");
    assert!(v["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .any(|p| p["topic"] == "accel_request" && p["direction"] == "writes"));

    let other_pub = dir.path().join("other.key.pub");
    let err = refused(&["ota", "inspect", s(&bundle), "--trusted", s(&other_pub)]);
    assert!(err.contains("not among the trusted keys"), "{err}");

    let mut bytes = std::fs::read(&bundle).expect("bundle");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let flipped = dir.path().join("flipped.takt");
    std::fs::write(&flipped, &bytes).expect("write");
    let err = refused(&["ota", "inspect", s(&flipped), "--trusted", s(&pubfile)]);
    assert!(err.contains("bad signature"), "{err}");

    let truncated = dir.path().join("truncated.takt");
    std::fs::write(&truncated, &bytes[..40]).expect("write");
    let err = refused(&["ota", "inspect", s(&truncated)]);
    assert!(err.contains("truncated"), "{err}");

    let err = refused(&[
        "ota",
        "sign",
        "--key",
        s(&key),
        "--app",
        "nosuch",
        "--version",
        "2",
        "--executable",
        s(&exe),
        "--manifest",
        &manifest(),
        "--out",
        s(&bundle),
    ]);
    assert!(err.contains("app `nosuch`"), "{err}");
    let err = refused(&[
        "ota",
        "sign",
        "--key",
        s(&key),
        "--app",
        "planning",
        "--version",
        "3",
        "--executable",
        s(&exe),
        "--file",
        "../evil=/etc/hostname",
        "--manifest",
        &manifest(),
        "--out",
        s(&dir.path().join("evil.takt")),
    ]);
    assert!(err.contains("path traversal"), "{err}");
    assert!(!dir.path().join("evil.takt").exists());
    assert!(!dir.path().join("evil.takt.tmp").exists());
}

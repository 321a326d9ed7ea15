//! `takt ota keygen | sign | inspect` as an integrator uses them: key files and their
//! modes, a signed bundle of an ACC app, verification and refusal with the reason.
#![deny(unsafe_code)]

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

// --- #12.12: expiry, key scope, key documents ------------------------------------------

mod common;

/// The demo manifest with absolute executables, `trusted_keys = [fleet]`, a root key and
/// one scoped key, written into `dir`.
fn trust_manifest(dir: &Path, fleet: &str, root: &str, scoped: &str, scope: &str) -> PathBuf {
    let source = common::absolute_executables(
        &std::fs::read_to_string(manifest()).expect("config/acc.toml"),
    );
    let ota = "\n[ota]\nprobation = \"1s\"\n";
    assert_eq!(source.matches(ota).count(), 1, "one [ota] table");
    let copy = source.replacen(
        ota,
        &format!(
            "\n[ota]\nprobation = \"1s\"\ntrusted_keys = [\"{fleet}\"]\nroot_keys = [\"{root}\"]\n\n[[ota.key]]\npublic = \"{scoped}\"\napps = [\"{scope}\"]\n"
        ),
        1,
    );
    let path = dir.join("acc.toml");
    std::fs::write(&path, copy).expect("write the manifest copy");
    path
}

fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    ok(&["ota", "keygen", "--out", s(&key)]);
    let public = std::fs::read_to_string(dir.join(format!("{name}.pub"))).expect("pub");
    (key, public.trim().to_string())
}

fn planning_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/acc-planning-v2")
}

fn sign_planning(key: &Path, version: &str, m: &Path, out: &Path, extra: &[&str]) -> Output {
    let exe = planning_exe();
    let mut args = vec![
        "ota",
        "sign",
        "--key",
        s(key),
        "--app",
        "planning",
        "--version",
        version,
        "--executable",
        s(&exe),
        "--manifest",
        s(m),
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    takt(&args)
}

#[test]
fn expiry_scope_and_key_documents_on_the_cli() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let (fleet, fleet_pub) = keygen(d, "fleet.key");
    let (root, root_pub) = keygen(d, "root.key");
    let (sensing_only, sensing_pub) = keygen(d, "sensing.key");
    let (rotated, rotated_pub) = keygen(d, "rotated.key");
    let m = trust_manifest(d, &fleet_pub, &root_pub, &sensing_pub, "sensing");
    ok(&["check", s(&m)]);

    // Expiry: a duration or a UTC time, inside the signed part, shown by inspect.
    let v2 = d.join("planning-2.takt");
    let out = sign_planning(&fleet, "2", &m, &v2, &["--expires", "2d"]);
    assert!(out.status.success(), "{out:?}");
    let text = ok(&["ota", "inspect", s(&v2), "--manifest", s(&m)]);
    for want in [
        "signature: verified",
        "scope:     every app (covers `planning`)",
        "expires:",
        "key doc:   none",
        "catalog:",
        &fleet_pub,
    ] {
        assert!(text.contains(want), "`{want}` in {text}");
    }
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "ota",
        "inspect",
        s(&v2),
        "--json",
        "--manifest",
        s(&m),
    ]))
    .expect("JSON");
    assert_eq!(json["expired"], false);
    let left = json["expires_unix_s"].as_u64().expect("expiry") - bundle_now();
    assert!(left <= 2 * 86_400 && left > 2 * 86_400 - 600, "{json}");
    for bad in ["2020-01-01T00:00:00Z", "5w", "soon"] {
        let out = sign_planning(&fleet, "2", &m, &d.join("bad.takt"), &["--expires", bad]);
        assert_eq!(out.status.code(), Some(2), "--expires {bad}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--expires"),
            "{out:?}"
        );
        assert!(!d.join("bad.takt").exists());
    }
    // An expired bundle (signed through the library: the CLI refuses to make one).
    let expired = d.join("expired.takt");
    let seed = takt::ota::from_hex::<32>(std::fs::read_to_string(&fleet).expect("key").trim())
        .expect("seed");
    let old = takt::ota::bundle::sign_with(
        &takt::ota::bundle::Fragment {
            app: "planning".into(),
            version: 2,
            version_label: "2".into(),
            tasks: Vec::new(),
            ports: Vec::new(),
        },
        &[takt::ota::bundle::Entry {
            name: "acc-planning".into(),
            mode: 0o755,
            bytes: b"old".to_vec(),
        }],
        &takt::ota::bundle::signing_key(&seed),
        &takt::ota::bundle::SignOptions {
            expires_unix_s: Some(bundle_now() - 3600),
            key_document: None,
            delta: None,
        },
    )
    .expect("signs");
    std::fs::write(&expired, old).expect("write");
    let err = refused(&["ota", "inspect", s(&expired), "--manifest", s(&m)]);
    assert!(err.contains("expired at") && err.contains("Z"), "{err}");

    // Scope: the sensing-only key cannot sign planning.
    let scoped = d.join("scoped.takt");
    assert!(sign_planning(&sensing_only, "2", &m, &scoped, &[])
        .status
        .success());
    let err = refused(&["ota", "inspect", s(&scoped), "--manifest", s(&m)]);
    assert!(
        err.contains(&format!("key {sensing_pub} may not sign app `planning`"))
            && err.contains("`sensing`"),
        "{err}"
    );

    // A key document: rotate in a new planning key, revoke the fleet key.
    let doc1 = d.join("keys-1.doc");
    let add = format!("{}=planning", d.join("rotated.key.pub").display());
    ok(&[
        "ota",
        "keys",
        "sign",
        "--root-key",
        s(&root),
        "--version",
        "1",
        "--add",
        &add,
        "--revoke",
        &fleet_pub,
        "--out",
        s(&doc1),
    ]);
    let text = ok(&["ota", "keys", "inspect", s(&doc1), "--manifest", s(&m)]);
    assert!(
        text.contains("version 1")
            && text.contains("verified against the manifest's root keys")
            && text.contains(&format!("revokes:   {fleet_pub}"))
            && text.contains(&format!("adds:      {rotated_pub} for planning")),
        "{text}"
    );
    // A document signed by a signing key (not a root) is refused.
    let forged = d.join("forged.doc");
    ok(&[
        "ota",
        "keys",
        "sign",
        "--root-key",
        s(&fleet),
        "--version",
        "5",
        "--out",
        s(&forged),
    ]);
    let err = refused(&["ota", "keys", "inspect", s(&forged), "--manifest", s(&m)]);
    assert!(err.contains("not among the manifest's root keys"), "{err}");
    // Hostile documents: every truncation and some flipped bytes, a clear refusal each.
    let good = std::fs::read(&doc1).expect("doc");
    let hostile = d.join("hostile.doc");
    for cut in [0, 7, 8, 15, 16, 40, good.len() - 97, good.len() - 1] {
        std::fs::write(&hostile, &good[..cut]).expect("write");
        let err = refused(&["ota", "keys", "inspect", s(&hostile), "--manifest", s(&m)]);
        assert!(err.contains("refused"), "cut {cut}: {err}");
    }
    for i in (0..good.len()).step_by(7) {
        let mut bad = good.clone();
        bad[i] ^= 0x20;
        std::fs::write(&hostile, &bad).expect("write");
        let err = refused(&["ota", "keys", "inspect", s(&hostile), "--manifest", s(&m)]);
        assert!(err.contains("refused"), "byte {i}: {err}");
    }

    // The rotated key's bundle carries the document; inspect shows and verifies it.
    let v3 = d.join("planning-3.takt");
    let out = sign_planning(&rotated, "3", &m, &v3, &["--key-doc", s(&doc1)]);
    assert!(out.status.success(), "{out:?}");
    let text = ok(&["ota", "inspect", s(&v3), "--manifest", s(&m)]);
    assert!(
        text.contains("key doc:   version 1")
            && text.contains("verified against the manifest's root keys")
            && text.contains("scope:     apps planning (covers `planning`)"),
        "{text}"
    );

    // Installed offline into a state directory: the fleet key's bundle is now refused.
    let state = d.join("state");
    ok(&[
        "ota",
        "keys",
        "install",
        s(&doc1),
        "--manifest",
        s(&m),
        "--ota-dir",
        s(&state),
    ]);
    let err = refused(&[
        "ota",
        "inspect",
        s(&v2),
        "--manifest",
        s(&m),
        "--ota-dir",
        s(&state),
    ]);
    assert!(
        err.contains(&format!(
            "key {fleet_pub} was revoked by key document version 1"
        )),
        "{err}"
    );
    // Versions only move forward: version 2, then version 1 again is refused.
    let doc2 = d.join("keys-2.doc");
    ok(&[
        "ota",
        "keys",
        "sign",
        "--root-key",
        s(&root),
        "--version",
        "2",
        "--add",
        &add,
        "--revoke",
        &fleet_pub,
        "--out",
        s(&doc2),
    ]);
    ok(&[
        "ota",
        "keys",
        "install",
        s(&doc2),
        "--manifest",
        s(&m),
        "--ota-dir",
        s(&state),
    ]);
    let err = refused(&[
        "ota",
        "keys",
        "install",
        s(&doc1),
        "--manifest",
        s(&m),
        "--ota-dir",
        s(&state),
    ]);
    assert!(err.contains("older than the installed version 2"), "{err}");
    // The v3 bundle carrying document 1 is refused on this vehicle: its document is old.
    let err = refused(&[
        "ota",
        "inspect",
        s(&v3),
        "--manifest",
        s(&m),
        "--ota-dir",
        s(&state),
    ]);
    assert!(
        err.contains("version 1, older than the installed version 2"),
        "{err}"
    );
    let err = refused(&[
        "ota",
        "keys",
        "sign",
        "--root-key",
        s(&root),
        "--version",
        "0",
        "--out",
        s(&hostile),
    ]);
    assert!(err.contains("start at 1"), "{err}");
    // One installed copy damaged: repaired from the other, reported.
    std::fs::write(state.join(".trust/keys.1"), b"TAKTKEYS").expect("damage");
    let out = takt(&[
        "ota",
        "keys",
        "install",
        s(&doc2),
        "--manifest",
        s(&m),
        "--ota-dir",
        s(&state),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(".trust/keys.1"),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read(state.join(".trust/keys.1")).expect("repaired"),
        std::fs::read(&doc2).expect("doc2")
    );

    // The state directory is locked while another process writes it.
    let lock = takt::ota::lock::StateLock::acquire(&state, "test").expect("lock");
    let out = takt(&[
        "ota",
        "keys",
        "install",
        s(&doc2),
        "--manifest",
        s(&m),
        "--ota-dir",
        s(&state),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        err.contains(s(&state)) && err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    drop(lock);
}

fn bundle_now() -> u64 {
    takt::ota::bundle::now_unix_s()
}

/// #15.3: a release build carries tens of MiB of debug info. `takt ota sign` ships the
/// executable stripped and keeps the debug info beside the bundle under the build id; the
/// stripped executable is the same program (same catalog, same build id).
#[test]
fn sign_ships_a_stripped_executable_and_keeps_its_debug_info_by_build_id() {
    let exe = planning_exe();
    let original = std::fs::read(&exe).expect("the planning executable is built");
    let has_debug = |bytes: &[u8]| {
        use object::{Object, ObjectSection};
        let f = object::File::parse(bytes).expect("an ELF file");
        let found = f.sections().any(|s| s.name() == Ok(".debug_info"));
        found
    };
    if !has_debug(&original) {
        eprintln!("SKIPPED sign_ships_a_stripped_executable_and_keeps_its_debug_info_by_build_id: {} has no debug info to strip (a build without debug = 1)", exe.display());
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (key, _) = keygen(dir.path(), "k");
    let out = dir.path().join("v2.takt");
    let o = sign_planning(&key, "2", Path::new(&manifest()), &out, &[]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("of debug info; the bundle carries it stripped"),
        "{err}"
    );
    let bundle_bytes = std::fs::read(&out).expect("bundle");
    let b = takt::ota::bundle::parse_unverified(&bundle_bytes).expect("bundle parses");
    let shipped = &b.entries[0].bytes;
    assert!(
        !has_debug(shipped),
        "the shipped executable carries no .debug_info"
    );
    assert!(
        (shipped.len() as u64) * 3 < original.len() as u64,
        "stripped {} B of {} B",
        shipped.len(),
        original.len()
    );
    println!(
        "planning v2: executable {} B, bundle {} B",
        original.len(),
        bundle_bytes.len()
    );
    // The debug file is named by the build id, which both executables still carry.
    let debug_dir = dir.path().join("v2.takt.debug");
    let files: Vec<_> = std::fs::read_dir(&debug_dir)
        .expect("the debug directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let id = files[0].strip_suffix(".debug").expect("<build-id>.debug");
    assert_eq!(id.len(), 40, "a 20-byte GNU build id: {id}");
    let note = |bytes: &[u8]| {
        let raw: Vec<u8> = (0..id.len() / 2)
            .map(|i| u8::from_str_radix(&id[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        bytes.windows(raw.len()).any(|w| w == raw.as_slice())
    };
    assert!(note(shipped) && note(&original), "both carry build id {id}");
    let debug = std::fs::read(debug_dir.join(&files[0])).expect("debug file");
    assert!(has_debug(&debug), "the debug file has the debug sections");
    // The stripped program still answers the catalog handshake, with the same catalog.
    let run = dir.path().join("shipped");
    std::fs::write(&run, shipped).expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert_eq!(
        takt::catalog::read_from_executable(&run).expect("stripped catalog"),
        takt::catalog::read_from_executable(&exe).expect("original catalog")
    );
}

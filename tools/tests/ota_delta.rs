//! Delta bundles on the real `takt` binary and the demo's real executables (issue #15.3):
//! `takt ota sign --delta-from` makes a small bundle whose patch rebuilds exactly the
//! stripped new executable; `takt ota inspect` shows payload, base and result and whether
//! the installed slot is the base; a flipped or truncated delta bundle fails the signature
//! check; and through a running supervisor a delta stages onto the installed version (the
//! slot then holds exactly the new executable's bytes, stamped, and it activates), while a
//! delta made from another version is refused naming the app and both hashes, with nothing
//! written.
//!
//! The installed version 1 is what a full bundle of `acc-planning` installs (its stripped
//! executable), placed with the runtime's own journal API. The supervisor test needs root
//! and SCHED_FIFO, and says SKIPPED by name otherwise. Run as
//! `flock /tmp/takt-rt.lock cargo test --release -p takt-cli --test ota_delta`.
#![deny(unsafe_code)]

#[macro_use]
mod common;
use common::OtaFixture as Fixture;
use common::{cli, ok, release_exe, s, takt, text, wait_running, Running, CLI_TIMEOUT};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use takt::ota::bundle;
use takt::ota::journal::Journal;
use takt::ota::slots::{self, Slot};
use takt::ota::storage::FsStorage;
use takt::ota::to_hex;

/// Runs `takt args`, which must be refused with exit code 2; returns its stderr.
fn refused(args: &[&str]) -> String {
    let out = cli(args, CLI_TIMEOUT);
    assert_eq!(
        out.status.code(),
        Some(2),
        "takt {args:?} must be refused: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stderr)
}

fn sha256(b: &[u8]) -> String {
    to_hex(&<[u8; 32]>::from(Sha256::digest(b)))
}

impl Fixture {
    /// Signs `exe` as planning `version`, as a delta against `from` when given.
    fn sign(&self, exe: &str, version: u64, from: Option<&str>, out: &str) -> PathBuf {
        let out = self.path(out);
        let exe = release_exe(exe);
        let version = version.to_string();
        let mut args = vec![
            "ota",
            "sign",
            "--key",
            s(&self.key),
            "--app",
            "planning",
            "--version",
            &version,
            "--executable",
            s(&exe),
            "--manifest",
            s(&self.manifest),
            "--out",
            s(&out),
        ];
        let base = from.map(release_exe);
        if let Some(b) = &base {
            args.extend(["--delta-from", s(b)]);
        }
        ok(&args);
        out
    }

    /// The executable a full bundle ships (stripped), read back from the bundle.
    fn shipped(&self, full_bundle: &Path) -> bundle::Entry {
        let bytes = std::fs::read(full_bundle).expect("bundle");
        let b = bundle::parse_unverified(&bytes).expect("a bundle");
        assert!(b.delta.is_none(), "a full bundle");
        b.entries[0].clone()
    }

    /// Planning version 1 installed from a full bundle of `acc-planning`, in slot a.
    fn install_v1(&self) -> bundle::Entry {
        let full = self.sign("acc-planning", 1, None, "planning-1.takt");
        let exe = self.shipped(&full);
        std::fs::create_dir_all(self.state()).expect("state dir");
        Journal::install(
            FsStorage::new(self.state()),
            "planning",
            1,
            std::slice::from_ref(&exe),
        )
        .expect("install v1");
        exe
    }

    fn start(&self, ctl: &Path, duration: &str) -> Running {
        Running::spawn(takt().args([
            "run",
            s(&self.manifest),
            "--multi-process",
            "--duration",
            duration,
            "--quiet",
            "--ota-dir",
            s(&self.state()),
            "--control",
            s(ctl),
        ]))
    }
}

#[test]
fn sign_delta_inspect_it_and_refuse_it_flipped_or_truncated() {
    let fx = Fixture::new("delta-cli");
    let v1 = fx.install_v1();
    let full = fx.sign("acc-planning-v2", 2, None, "planning-2.takt");
    let delta = fx.sign(
        "acc-planning-v2",
        2,
        Some("acc-planning"),
        "planning-2-delta.takt",
    );
    let v2 = fx.shipped(&full);
    let full_len = std::fs::metadata(&full).expect("full").len();
    let delta_len = std::fs::metadata(&delta).expect("delta").len();
    assert!(
        delta_len * 100 < full_len,
        "the delta bundle is {delta_len} bytes, the full one {full_len}"
    );

    // inspect: a delta, from the installed v1's stripped executable to v2's.
    let out = ok(&[
        "ota",
        "inspect",
        s(&delta),
        "--manifest",
        s(&fx.manifest),
        "--ota-dir",
        s(&fx.state()),
    ]);
    assert!(out.contains("signature: verified"), "{out}");
    assert!(out.contains("payload:   delta"), "{out}");
    assert!(
        out.contains(&format!("base:    sha256:{}", sha256(&v1.bytes))),
        "{out}"
    );
    assert!(
        out.contains("matches installed version 1 in slot a"),
        "{out}"
    );
    assert!(
        out.contains(&format!("result:  sha256:{}", sha256(&v2.bytes))),
        "{out}"
    );
    let json: Value = serde_json::from_str(&ok(&[
        "ota",
        "inspect",
        s(&delta),
        "--manifest",
        s(&fx.manifest),
        "--json",
    ]))
    .expect("JSON");
    assert_eq!(json["delta"]["base_sha256"], sha256(&v1.bytes), "{json}");
    assert_eq!(json["delta"]["result_sha256"], sha256(&v2.bytes), "{json}");
    assert_eq!(json["delta"]["result_bytes"], v2.bytes.len(), "{json}");
    assert_eq!(json["entries"][0]["bytes"], v2.bytes.len(), "{json}");
    let out = ok(&["ota", "inspect", s(&full), "--manifest", s(&fx.manifest)]);
    assert!(out.contains("payload:   full"), "{out}");

    // A flipped byte anywhere in the patch, or a cut, fails the signature check.
    let bytes = std::fs::read(&delta).expect("delta");
    let patch_len = bundle::parse_unverified(&bytes)
        .expect("a bundle")
        .delta
        .expect("a delta")
        .patch
        .len();
    let patch_at = bytes.len() - bundle::TRAILER_BYTES - patch_len;
    for at in [patch_at, patch_at + patch_len / 2] {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x10;
        let bad = fx.path("flipped.takt");
        std::fs::write(&bad, &flipped).expect("write");
        let err = refused(&["ota", "inspect", s(&bad), "--manifest", s(&fx.manifest)]);
        assert!(err.contains("bad signature"), "{err}");
    }
    let bad = fx.path("truncated.takt");
    std::fs::write(&bad, &bytes[..bytes.len() - patch_len / 2]).expect("write");
    let err = refused(&["ota", "inspect", s(&bad), "--manifest", s(&fx.manifest)]);
    assert!(err.contains("refused"), "{err}");

    // A base that is not a file: a clear refusal, no bundle.
    let err = refused(&[
        "ota",
        "sign",
        "--key",
        s(&fx.key),
        "--app",
        "planning",
        "--version",
        "3",
        "--executable",
        s(&release_exe("acc-planning-v2")),
        "--delta-from",
        s(&fx.path("no-such-exe")),
        "--manifest",
        s(&fx.manifest),
        "--out",
        s(&fx.path("never.takt")),
    ]);
    assert!(err.contains("no-such-exe"), "{err}");
    assert!(!fx.path("never.takt").exists());
}

fn planning_status(ctl: &Path) -> Value {
    let v: Value =
        serde_json::from_str(&ok(&["ota", "status", "--json", "--control", s(ctl)])).expect("JSON");
    v["apps"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["app"] == "planning"))
        .cloned()
        .unwrap_or_else(|| panic!("no app planning in {v}"))
}

#[test]
fn a_delta_stages_onto_the_installed_version_and_is_refused_on_another() {
    needs_realtime!("a_delta_stages_onto_the_installed_version_and_is_refused_on_another");
    let fx = Fixture::new("delta-live");
    let v1 = fx.install_v1();
    let v2 = fx.shipped(&fx.sign("acc-planning-v2", 2, None, "planning-2.takt"));
    let v3 = fx.shipped(&fx.sign("acc-planning-v3", 3, None, "planning-3.takt"));
    let good = fx.sign(
        "acc-planning-v2",
        2,
        Some("acc-planning"),
        "planning-2-delta.takt",
    );
    // Made for a vehicle that runs v3: its base is not what this one has installed.
    let other_base = fx.sign(
        "acc-planning-v2",
        4,
        Some("acc-planning-v3"),
        "planning-4-from-3.takt",
    );
    let slot_b = fx.state().join("planning/slot-b");

    let ctl = fx.path("ctl.sock");
    let run = fx.start(&ctl, "12s");
    wait_running(&ctl);

    let err = refused(&["ota", "stage", s(&other_base), "--control", s(&ctl)]);
    assert!(err.contains("app `planning`"), "{err}");
    assert!(err.contains(&sha256(&v3.bytes)), "the expected base: {err}");
    assert!(err.contains(&sha256(&v1.bytes)), "the installed one: {err}");
    assert!(
        err.contains("another version than the delta was made for"),
        "{err}"
    );
    let a = planning_status(&ctl);
    assert_eq!(a["installed_version"], 1, "{a}");
    assert_eq!(a["running_version"], 1, "{a}");
    assert!(
        !slot_b.join(".stamp").exists(),
        "nothing was written into slot b"
    );

    let out = ok(&["ota", "stage", s(&good), "--control", s(&ctl)]);
    assert!(
        out.contains("staged into slot b") || out.contains("done"),
        "{out}"
    );
    let staged = std::fs::read(slot_b.join(&v2.name)).expect("slot b's executable");
    assert!(
        staged == v2.bytes,
        "slot b holds exactly v2's stripped executable ({} bytes, sha256 {}; v2 is {} bytes, sha256 {})",
        staged.len(),
        sha256(&staged),
        v2.bytes.len(),
        sha256(&v2.bytes)
    );
    let stamp = slots::verify(&FsStorage::new(fx.state()), "planning", Slot::B)
        .expect("slot b is complete and authentic");
    assert_eq!(stamp.version, 2);
    assert_eq!(a["installed_version"], 1);

    // The rebuilt executable runs: it activates like any staged version.
    ok(&[
        "ota",
        "activate",
        "planning",
        "--hot-swap",
        "--control",
        s(&ctl),
    ]);
    let a = planning_status(&ctl);
    assert_eq!(a["running_version"], 2, "{a}");

    let out = run.wait(Duration::from_secs(60), "the run");
    let err = text(&out.stderr);
    assert!(out.status.success(), "{}: {err}", out.status);
    assert!(err.contains("as a delta of"), "{err}");
}

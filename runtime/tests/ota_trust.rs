//! The bundle trust model (issue #12.12): expiry, per-app key scope, and root-signed key
//! documents that add, re-scope and revoke signing keys, with versions that only move
//! forward and two durable copies in the state directory. Every refusal names what was
//! refused; hostile bytes are clear errors, never panics.

use takt::ota::bundle::{self, BundleReadError, Entry, Fragment, SignOptions, TrustedKeys};
use takt::ota::keys::{self, DocKey, KeyDocError, KeyDocumentBody};
use takt::ota::storage::{FsStorage, SimStorage, Storage};
use takt::ota::to_hex;

const NOW: u64 = 1_800_000_000; // 2027-01-15T08:00:00Z

fn key(n: u8) -> ed25519_dalek::SigningKey {
    bundle::signing_key(&[n; 32])
}

fn public(n: u8) -> [u8; 32] {
    bundle::public_key(&[n; 32])
}

fn fragment(app: &str, version: u64) -> Fragment {
    Fragment {
        app: app.to_string(),
        version,
        version_label: format!("{version}.0"),
        tasks: Vec::new(),
        ports: Vec::new(),
    }
}

fn entries() -> Vec<Entry> {
    vec![Entry {
        name: "app".to_string(),
        mode: 0o755,
        bytes: b"#!app\n".repeat(100),
    }]
}

fn bundle_by(n: u8, app: &str, expires: u64, doc: Option<Vec<u8>>) -> Vec<u8> {
    bundle::sign_with(
        &fragment(app, 2),
        &entries(),
        &key(n),
        &SignOptions {
            expires_unix_s: Some(expires),
            key_document: doc,
            delta: None,
        },
    )
    .expect("signs")
}

/// Key 1 signs every app, key 2 only `planning`; key 9 is the root.
fn manifest_keys() -> TrustedKeys {
    let mut t = TrustedKeys::new();
    t.add(&public(1)).expect("key 1");
    t.add_scoped(&public(2), Some(vec!["planning".to_string()]))
        .expect("key 2");
    t.add_root(&public(9)).expect("root");
    t
}

fn doc(version: u64, add: Vec<DocKey>, revoked: Vec<[u8; 32]>, root: u8) -> Vec<u8> {
    keys::sign(
        &KeyDocumentBody {
            version,
            keys: add,
            revoked,
        },
        &key(root),
    )
    .expect("signs")
}

fn parsed(bytes: &[u8]) -> keys::KeyDocument {
    keys::parse(bytes, &[public(9)]).expect("a root-signed document")
}

#[test]
fn an_expired_bundle_is_refused_naming_the_time() {
    let b = bundle_by(1, "planning", NOW - 1, None);
    let err = bundle::verify(&b, &manifest_keys(), None, NOW).unwrap_err();
    assert!(matches!(err, BundleReadError::Expired { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&bundle::format_unix_s(NOW - 1)) && text.contains("expired"),
        "{text}"
    );
    // The same bundle one second earlier is fine: the expiry is the only difference.
    bundle::verify(&b, &manifest_keys(), None, NOW - 1).expect("not yet expired");
    // The default validity is 30 days from signing.
    let fresh = bundle::sign(&fragment("planning", 2), &entries(), &key(1)).expect("signs");
    let v = bundle::verify(&fresh, &manifest_keys(), None, bundle::now_unix_s()).expect("ok");
    let left = v.bundle.expires_unix_s - bundle::now_unix_s();
    assert!(left <= bundle::DEFAULT_VALIDITY_S && left + 60 > bundle::DEFAULT_VALIDITY_S);
}

#[test]
fn expiry_text_takes_durations_and_utc_times_and_refuses_the_rest() {
    assert_eq!(bundle::parse_expires("30d", NOW), Ok(NOW + 30 * 86_400));
    assert_eq!(bundle::parse_expires("12h", NOW), Ok(NOW + 12 * 3600));
    assert_eq!(bundle::parse_expires("90m", NOW), Ok(NOW + 90 * 60));
    assert_eq!(bundle::parse_expires("3600s", NOW), Ok(NOW + 3600));
    let t = bundle::parse_expires("2027-01-31T00:00:00Z", NOW).expect("a time");
    assert_eq!(bundle::format_unix_s(t), "2027-01-31T00:00:00Z");
    assert_eq!(bundle::format_unix_s(NOW), "2027-01-15T08:00:00Z");
    assert_eq!(
        bundle::parse_rfc3339_utc("2028-02-29T23:59:59Z").map(bundle::format_unix_s),
        Ok("2028-02-29T23:59:59Z".to_string())
    );
    assert_eq!(bundle::parse_rfc3339_utc("1970-01-01T00:00:00Z"), Ok(0));
    for bad in [
        "",
        "30",
        "d",
        "30w",
        "-5d",
        "2027-02-29T00:00:00Z",
        "2027-13-01T00:00:00Z",
        "2027-01-31T24:00:00Z",
        "2027-01-31T00:00:00+02:00",
        "2027-01-31",
        "99999999999999999999d",
        "2020-01-01T00:00:00Z", // in the past
        "0s",                   // not in the future
    ] {
        let err = bundle::parse_expires(bad, NOW).unwrap_err();
        assert!(!err.to_string().is_empty(), "{bad:?}");
    }
}

#[test]
fn a_key_outside_its_scope_is_refused_naming_key_and_app() {
    let b = bundle_by(2, "sensing", NOW + 60, None);
    let err = bundle::verify(&b, &manifest_keys(), None, NOW).unwrap_err();
    assert!(matches!(err, BundleReadError::OutOfScope { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&to_hex(&public(2)))
            && text.contains("`sensing`")
            && text.contains("`planning`"),
        "{text}"
    );
    bundle::verify(
        &bundle_by(2, "planning", NOW + 60, None),
        &manifest_keys(),
        None,
        NOW,
    )
    .expect("in scope");
    bundle::verify(
        &bundle_by(1, "sensing", NOW + 60, None),
        &manifest_keys(),
        None,
        NOW,
    )
    .expect("an unscoped key signs every app");
}

#[test]
fn a_carried_key_document_adds_a_rotated_key_and_is_returned_for_installing() {
    // Key 3 is new: unknown to the manifest, so its bundle is refused on its own...
    let plain = bundle_by(3, "planning", NOW + 60, None);
    let err = bundle::verify(&plain, &manifest_keys(), None, NOW).unwrap_err();
    assert!(matches!(err, BundleReadError::UntrustedKey { .. }), "{err}");
    // ...and accepted with a root-signed document that adds it, scoped to planning.
    let d = doc(
        1,
        vec![DocKey {
            public: public(3),
            apps: Some(vec!["planning".into()]),
        }],
        vec![],
        9,
    );
    let b = bundle_by(3, "planning", NOW + 60, Some(d.clone()));
    let v = bundle::verify(&b, &manifest_keys(), None, NOW).expect("rotated in");
    assert_eq!(v.new_key_document.map(|x| x.body.version), Some(1));
    assert_eq!(v.effective.doc_version(), 1);
    // Its scope holds.
    let err = bundle::verify(
        &bundle_by(3, "sensing", NOW + 60, Some(d.clone())),
        &manifest_keys(),
        None,
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, BundleReadError::OutOfScope { .. }), "{err}");
    // Once installed, the document need not be carried again.
    let installed = parsed(&d);
    let v = bundle::verify(&plain, &manifest_keys(), Some(&installed), NOW).expect("trusted");
    assert!(v.new_key_document.is_none());
}

#[test]
fn a_revoked_key_is_refused_and_an_older_document_cannot_undo_it() {
    let v1 = doc(1, vec![], vec![], 9);
    let v2 = doc(2, vec![], vec![public(1)], 9);
    let installed = parsed(&v2);
    let b = bundle_by(1, "planning", NOW + 60, None);
    let err = bundle::verify(&b, &manifest_keys(), Some(&installed), NOW).unwrap_err();
    assert!(
        matches!(err, BundleReadError::Revoked { doc_version: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&to_hex(&public(1))), "{err}");
    // Replaying version 1 inside a bundle: refused as older.
    let replay = bundle_by(1, "planning", NOW + 60, Some(v1));
    let err = bundle::verify(&replay, &manifest_keys(), Some(&installed), NOW).unwrap_err();
    assert!(
        matches!(
            err,
            BundleReadError::OldKeyDocument {
                found: 1,
                installed: 2
            }
        ),
        "{err}"
    );
    // The revoking document carried by the revoked key's own bundle: refused too.
    let err = bundle::verify(
        &bundle_by(1, "planning", NOW + 60, Some(v2)),
        &manifest_keys(),
        None,
        NOW,
    )
    .unwrap_err();
    assert!(matches!(err, BundleReadError::Revoked { .. }), "{err}");
    // Another document with the installed version: one version, one document.
    let other_v2 = doc(2, vec![], vec![public(2)], 9);
    let err = bundle::verify(
        &bundle_by(2, "planning", NOW + 60, Some(other_v2)),
        &manifest_keys(),
        Some(&installed),
        NOW,
    )
    .unwrap_err();
    assert!(
        matches!(err, BundleReadError::ConflictingKeyDocument { version: 2 }),
        "{err}"
    );
}

#[test]
fn a_key_document_not_signed_by_a_root_key_is_refused() {
    // Signed by signing key 1, not by the root: a signing key cannot promote others.
    let d = doc(
        1,
        vec![DocKey {
            public: public(3),
            apps: None,
        }],
        vec![],
        1,
    );
    let b = bundle_by(3, "planning", NOW + 60, Some(d.clone()));
    let err = bundle::verify(&b, &manifest_keys(), None, NOW).unwrap_err();
    assert!(
        matches!(err, BundleReadError::BadKeyDocument { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("root keys"), "{err}");
    assert_eq!(keys::parse(&d, &[]).unwrap_err(), KeyDocError::NoRootKeys);
}

#[test]
fn hostile_key_documents_and_bundles_carrying_them_are_clear_errors() {
    let good = doc(
        3,
        vec![DocKey {
            public: public(3),
            apps: Some(vec!["planning".into(), "sensing".into()]),
        }],
        vec![public(4)],
        9,
    );
    parsed(&good);
    for cut in 0..good.len() {
        let err = keys::parse(&good[..cut], &[public(9)]).unwrap_err();
        assert!(!err.to_string().is_empty(), "cut {cut}");
        assert!(keys::parse_unverified(&good[..cut]).is_err(), "cut {cut}");
    }
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x10;
        assert!(keys::parse(&bad, &[public(9)]).is_err(), "byte {i} flipped");
        // Without the signature check the parser still never panics.
        let _ = keys::parse_unverified(&bad);
    }
    let b = bundle_by(3, "planning", NOW + 60, Some(good));
    bundle::verify(&b, &manifest_keys(), None, NOW).expect("the good one verifies");
    for cut in 0..b.len().min(4096) {
        assert!(
            bundle::verify(&b[..cut], &manifest_keys(), None, NOW).is_err(),
            "cut {cut}"
        );
    }
    for i in 0..b.len() {
        let mut bad = b.clone();
        bad[i] ^= 0x01;
        assert!(
            bundle::verify(&bad, &manifest_keys(), None, NOW).is_err(),
            "byte {i} flipped"
        );
    }
    // A key document length past the limit, in an unsigned header: refused by size.
    let mut huge = b.clone();
    huge[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = bundle::verify(&huge, &manifest_keys(), None, NOW).unwrap_err();
    assert!(
        matches!(err, BundleReadError::KeyDocumentTooLarge { .. }),
        "{err}"
    );
    // Format 1 (no expiry) is refused by name.
    let mut old = b;
    old[8..12].copy_from_slice(&1u32.to_le_bytes());
    let err = bundle::verify(&old, &manifest_keys(), None, NOW).unwrap_err();
    assert!(
        matches!(err, BundleReadError::UnsupportedFormat { found: 1 }),
        "{err}"
    );
}

#[test]
fn the_installed_key_document_is_kept_twice_and_repaired_from_either_copy() {
    let roots = [public(9)];
    let v1 = parsed(&doc(1, vec![], vec![], 9));
    let v2 = parsed(&doc(2, vec![], vec![public(1)], 9));
    let mut s = SimStorage::new();
    assert_eq!(keys::load_installed(&mut s, &roots).expect("none").0, None);
    keys::install(&mut s, &v1).expect("installs");
    keys::install(&mut s, &v2).expect("installs");
    // Power cut after an install: both copies are durable.
    s.power_cut();
    let (d, notes) = keys::load_installed(&mut s, &roots).expect("loads");
    assert_eq!(d.map(|d| d.body.version), Some(2));
    assert!(notes.is_empty(), "{notes:?}");

    let dir = tempfile::tempdir().expect("temp dir");
    let mut fs = FsStorage::new(dir.path());
    keys::install(&mut fs, &v2).expect("installs");
    // One copy lost, damaged or older: the other holds, reported, and both are rewritten.
    for damage in 0..3 {
        let path = dir.path().join(keys::COPIES[damage % 2]);
        match damage {
            0 => std::fs::remove_file(&path).expect("delete"),
            1 => std::fs::write(&path, &v2.bytes[..40]).expect("truncate"),
            _ => std::fs::write(&path, &v1.bytes).expect("older"),
        }
        let (d, notes) = keys::load_installed(&mut fs, &roots).expect("loads");
        assert_eq!(d.map(|d| d.body.version), Some(2), "damage {damage}");
        assert!(!notes.is_empty(), "damage {damage}: not reported");
        for c in keys::COPIES {
            assert_eq!(
                fs.read(c, 1 << 16).expect("read"),
                Some(v2.bytes.clone()),
                "damage {damage}: {c} rewritten"
            );
        }
    }
    // Both copies damaged: a refusal that names them, never the manifest's keys alone.
    for c in keys::COPIES {
        std::fs::write(dir.path().join(c), b"TAKTKEYSjunk").expect("write");
    }
    let err = keys::load_installed(&mut fs, &roots).unwrap_err();
    assert!(
        err.contains(".trust/keys.1") && err.contains("revocations"),
        "{err}"
    );
}

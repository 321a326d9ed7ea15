//! Delta bundles at the library level: a signed delta round-trips to exactly the new
//! executable; a corrupted or truncated one fails the signature check; and a delta whose
//! signed header is valid but whose patch is hostile (overflowing header sizes, a result
//! size beyond the signed one, a bzip2 bomb of controls that write nothing, controls that
//! write too much or negative lengths, random damage) is refused with a reason, without a
//! panic, and without an allocation sized by what the patch claims.
//!
//! The allocation bound is shown with takt's counting allocator, which records, for the
//! thread that asks, the largest single allocation and the bytes requested while a patch is
//! applied.

use std::io::Write;

use proptest::prelude::*;
use sha2::{Digest, Sha256};
use takt::ota::bundle::{self, BundleReadError, Entry, Fragment, SignOptions, TrustedKeys};
use takt::ota::delta::{Delta, DeltaError};

takt::counting_allocator!();

/// Runs `f` and returns its result with the largest single allocation and the bytes
/// requested by this thread meanwhile (takt's counting allocator, which needs `test-hooks`).
fn watched<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    // A binding, not the constant itself: without `test-hooks` this must fail at run time.
    let counting = takt::alloc_count::COUNTING;
    assert!(
        counting,
        "the allocation bound needs takt's `test-hooks` feature: `cargo test --workspace` enables it through the CLI's dev-dependencies; alone, run `cargo test -p takt --features test-hooks`"
    );
    let (r, w) = takt::alloc_count::watch(f);
    (r, w.largest, w.bytes)
}

/// A bzip2 decoder's working state for the largest block size is about 3.6 MB; nothing a
/// patch claims may push an allocation beyond this.
const ALLOCATION_BOUND: usize = 8 << 20;

fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// An "executable" of 64 KiB and a new version of it with a few changes, as a rebuild has.
fn versions() -> (Vec<u8>, Vec<u8>) {
    let old: Vec<u8> = (0..16_384u32)
        .flat_map(|i| (i.wrapping_mul(2_654_435_761)).to_le_bytes())
        .collect();
    let mut new = old.clone();
    new[100..108].copy_from_slice(b"version2");
    new[40_000] ^= 0x5a;
    new.extend_from_slice(b"and a new function at the end");
    (old, new)
}

fn seed() -> [u8; 32] {
    [42; 32]
}

fn trusted() -> TrustedKeys {
    let mut t = TrustedKeys::new();
    t.add(&bundle::public_key(&seed())).expect("a key");
    t
}

fn fragment() -> Fragment {
    Fragment {
        app: "planning".into(),
        version: 2,
        version_label: "2".into(),
        tasks: Vec::new(),
        ports: Vec::new(),
    }
}

/// A bundle for `new` carrying `delta`, signed with the trusted key.
fn signed(new: &[u8], delta: Delta) -> Vec<u8> {
    bundle::sign_with(
        &fragment(),
        &[Entry {
            name: "planning-exe".into(),
            mode: 0o755,
            bytes: new.to_vec(),
        }],
        &bundle::signing_key(&seed()),
        &SignOptions {
            delta: Some(delta),
            ..SignOptions::default()
        },
    )
    .expect("signs")
}

/// A delta from `old` to `new` whose patch is `patch`: its header hashes are the true
/// ones, so only the patch is hostile.
fn with_patch(old: &[u8], new: &[u8], patch: Vec<u8>) -> Delta {
    Delta {
        base_sha256: sha256(old),
        result_sha256: sha256(new),
        result_len: new.len() as u64,
        patch,
    }
}

/// Verifies `bytes`, then applies its delta to `old` the way staging does.
fn stage(bytes: &[u8], old: &[u8]) -> Result<Vec<u8>, String> {
    let b = bundle::read(bytes, &trusted()).map_err(|e| e.to_string())?;
    let entries = b
        .into_entries(|| Ok(old.to_vec()))
        .map_err(|e| e.to_string())?;
    Ok(entries[0].bytes.clone())
}

fn offtout(x: i64) -> [u8; 8] {
    if x < 0 {
        (x.unsigned_abs() | (1 << 63)).to_le_bytes()
    } else {
        (x as u64).to_le_bytes()
    }
}

fn bz(bytes: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    e.write_all(bytes).expect("compress");
    e.finish().expect("compress")
}

/// A bsdiff 4 patch from its parts: header sizes as given, streams compressed.
fn patch(controls: &[(i64, i64, i64)], diff: &[u8], extra: &[u8], stated_len: i64) -> Vec<u8> {
    let mut c = Vec::new();
    for &(add, copy, seek) in controls {
        c.extend_from_slice(&offtout(add));
        c.extend_from_slice(&offtout(copy));
        c.extend_from_slice(&offtout(seek));
    }
    let (c, d, e) = (bz(&c), bz(diff), bz(extra));
    let mut p = b"BSDIFF40".to_vec();
    p.extend_from_slice(&offtout(c.len() as i64));
    p.extend_from_slice(&offtout(d.len() as i64));
    p.extend_from_slice(&offtout(stated_len));
    p.extend_from_slice(&c);
    p.extend_from_slice(&d);
    p.extend_from_slice(&e);
    p
}

#[test]
fn a_signed_delta_rebuilds_exactly_the_new_executable_from_the_old_one_only() {
    let (old, new) = versions();
    let d = Delta::make(&old, &new).expect("makes");
    assert!(
        d.patch.len() < new.len() / 20,
        "patch {} bytes",
        d.patch.len()
    );
    let bytes = signed(&new, d);
    assert!(bytes.len() < new.len() / 10, "bundle {} bytes", bytes.len());
    let b = bundle::read(&bytes, &trusted()).expect("verifies");
    let delta = b.delta.as_ref().expect("a delta bundle");
    assert_eq!(delta.base_sha256, sha256(&old));
    assert_eq!(delta.result_sha256, sha256(&new));
    assert_eq!(b.installed_bytes(), new.len() as u64);
    assert_eq!(stage(&bytes, &old).expect("applies"), new);
    // Another installed executable: refused, naming both hashes.
    let e = stage(&bytes, &new).expect_err("another base");
    assert!(e.contains(&takt::ota::to_hex(&sha256(&old))), "{e}");
    assert!(e.contains(&takt::ota::to_hex(&sha256(&new))), "{e}");
    // A full bundle never asks for the installed executable.
    let full = bundle::sign(
        &fragment(),
        &[Entry {
            name: "planning-exe".into(),
            mode: 0o755,
            bytes: new.clone(),
        }],
        &bundle::signing_key(&seed()),
    )
    .expect("signs");
    let b = bundle::read(&full, &trusted()).expect("verifies");
    assert!(b.delta.is_none());
    let entries = b
        .into_entries(|| panic!("a full bundle read the installed executable"))
        .expect("entries");
    assert_eq!(entries[0].bytes, new);
}

#[test]
fn a_delta_whose_result_differs_from_its_executable_is_never_signed() {
    let (old, new) = versions();
    let d = Delta::make(&old, &new).expect("makes");
    let e = bundle::sign_with(
        &fragment(),
        &[Entry {
            name: "planning-exe".into(),
            mode: 0o755,
            bytes: old.clone(),
        }],
        &bundle::signing_key(&seed()),
        &SignOptions {
            delta: Some(d),
            ..SignOptions::default()
        },
    )
    .expect_err("result and entry differ");
    assert!(e.to_string().contains("is not entry `planning-exe`"), "{e}");
}

#[test]
fn a_flipped_or_truncated_delta_bundle_fails_the_signature_check() {
    let (old, new) = versions();
    let d = Delta::make(&old, &new).expect("makes");
    let patch_len = d.patch.len();
    let bytes = signed(&new, d);
    // The patch is the last thing before the 96-byte trailer.
    let patch_at = bytes.len() - bundle::TRAILER_BYTES - patch_len;
    for at in [
        patch_at,
        patch_at + patch_len / 2,
        bytes.len() - bundle::TRAILER_BYTES - 1,
    ] {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x01;
        let e = bundle::read(&flipped, &trusted()).expect_err("flipped");
        assert!(
            matches!(e, BundleReadError::BadSignature { .. }),
            "{at}: {e}"
        );
    }
    // The base hash and the result length are signed too.
    let header_at = patch_at - 8 - 8 - 32 - 32;
    for at in [header_at, header_at + 32, header_at + 64] {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x80;
        let e = bundle::read(&flipped, &trusted()).expect_err("flipped header");
        assert!(
            matches!(e, BundleReadError::BadSignature { .. }),
            "{at}: {e}"
        );
    }
    for cut in [1, patch_len / 2, patch_len + bundle::TRAILER_BYTES] {
        let truncated = &bytes[..bytes.len() - cut];
        let e = bundle::read(truncated, &trusted()).expect_err("truncated");
        assert!(
            matches!(
                e,
                BundleReadError::BadSignature { .. }
                    | BundleReadError::UntrustedKey { .. }
                    | BundleReadError::Truncated { .. }
            ),
            "cut {cut}: {e}"
        );
    }
}

#[test]
fn a_delta_entry_is_allowed_only_as_the_executable() {
    // Hand-made: a file entry first, then an entry of the delta kind (3), refused by its
    // kind before anything of it is read.
    let (_, new) = versions();
    let bytes = bundle::sign_raw_for_tests(
        &fragment(),
        &[
            ("exe".into(), 0, 0o755, new.clone()),
            ("more".into(), 3, 0o644, vec![0; 100]),
        ],
        &bundle::signing_key(&seed()),
    );
    let e = bundle::read(&bytes, &trusted()).expect_err("a second delta entry");
    assert_eq!(
        e,
        BundleReadError::DeltaNotExecutable {
            name: "more".into()
        }
    );
}

/// Each hostile patch, signed with a valid header, and the words its refusal must contain.
fn hostile(new: &[u8]) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let n = new.len() as i64;
    let zero_controls = vec![(0, 0, 0); 200_000];
    let mut overflowing = b"BSDIFF40".to_vec();
    overflowing.extend_from_slice(&offtout(i64::MAX));
    overflowing.extend_from_slice(&offtout(i64::MAX));
    overflowing.extend_from_slice(&offtout(n));
    overflowing.extend_from_slice(&[0; 64]);
    vec![
        ("empty", Vec::new(), "shorter than the 32-byte header"),
        ("not bsdiff", vec![0x42; 64], "no `BSDIFF40` magic"),
        (
            "overflowing header sizes",
            overflowing,
            "header states streams",
        ),
        (
            "a result of 1 TiB",
            patch(&[(0, n, 0)], &[], new, 1 << 40),
            "header states a result of 1099511627776 bytes",
        ),
        (
            "a bzip2 bomb of controls that write nothing",
            patch(&zero_controls, &[], &[], n),
            "more than",
        ),
        (
            "a control copying 1 TiB",
            patch(&[(0, 1 << 40, 0)], &[], new, n),
            "writes past",
        ),
        (
            "a negative add",
            patch(&[(-5, n + 5, 0)], &[], new, n),
            "writes past",
        ),
        (
            "controls writing too little",
            patch(&[(0, n - 1, 0)], &[], new, n),
            "controls write",
        ),
        (
            "extra bytes missing",
            patch(&[(0, n, 0)], &[], &new[..10], n),
            "not a valid bsdiff 4 patch",
        ),
        (
            "an add reading past the base",
            patch(&[(n, 0, 0)], &vec![0; new.len()], &[], n),
            "not a valid bsdiff 4 patch",
        ),
        (
            "a seek before the base",
            patch(&[(0, 1, -1_000_000), (1, n - 2, 0)], &[0], new, n),
            "not a valid bsdiff 4 patch",
        ),
        (
            "garbage streams",
            {
                let mut p = patch(&[(n, 0, 0)], &vec![1; new.len()], &[], n);
                let len = p.len();
                p[len - 20..].fill(0xee);
                p
            },
            // Damage past the bytes read may surface only as the result's hash.
            "patch",
        ),
        (
            "a well-formed patch to other bytes",
            patch(&[(0, n, 0)], &[], &vec![7; new.len()], n),
            "the bundle promises",
        ),
    ]
}

#[test]
fn a_hostile_patch_under_a_valid_signature_is_refused_without_a_claimed_allocation() {
    let (old, new) = versions();
    for (what, p, words) in hostile(&new) {
        let bytes = signed(&new, with_patch(&old, &new, p));
        let (r, largest, total) = watched(|| stage(&bytes, &old));
        let e = r.expect_err(what);
        assert!(e.contains(words), "{what}: `{e}` lacks `{words}`");
        assert!(
            largest <= ALLOCATION_BOUND,
            "{what}: an allocation of {largest} bytes"
        );
        // The bundle and the base are copied once each; nothing else grows with a claim.
        assert!(
            total <= 4 * ALLOCATION_BOUND + 4 * bytes.len() + 4 * old.len(),
            "{what}: {total} bytes allocated"
        );
    }
}

#[test]
fn the_bomb_is_refused_after_at_most_one_control_per_result_byte() {
    // A control stream far longer than the result: decoding stops at the bound, so the
    // bytes it allocates stay proportional to the result, not to the stream.
    let (old, new) = versions();
    let controls = vec![(0i64, 0i64, 0i64); 2_000_000];
    let p = patch(&controls, &[], &[], new.len() as i64);
    assert!(p.len() < 64 << 10, "the bomb is small: {} bytes", p.len());
    let d = with_patch(&old, &new, p);
    let (r, _, total) = watched(|| d.apply(&old));
    let e = r.expect_err("a bomb");
    assert!(
        matches!(e, DeltaError::BadPatch { ref reason } if reason.contains("more than 65566 controls")),
        "{e}"
    );
    // 2 million controls are 48 MB decoded; the bound is 65,566 controls (1.6 MB).
    assert!(total < 16 << 20, "{total} bytes allocated");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random damage to a valid patch (re-signed, so it passes the signature): either the
    /// exact new executable or a refusal, never a panic or another result.
    #[test]
    fn a_damaged_patch_gives_the_exact_result_or_a_refusal(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let (old, new) = versions();
        let good = Delta::make(&old, &new).expect("makes");
        let mut p = good.patch.clone();
        for (at, value) in flips {
            let i = at.index(p.len());
            p[i] = value;
        }
        if let Some(cut) = cut {
            p.truncate(cut.index(p.len()));
        }
        let d = with_patch(&old, &new, p);
        let (r, largest, _) = watched(|| d.apply(&old));
        prop_assert!(largest <= ALLOCATION_BOUND.max(new.len() * 2), "{largest}");
        if let Ok(out) = r {
            prop_assert_eq!(out, new);
        }
    }
}

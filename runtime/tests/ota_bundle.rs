//! Signed bundles and the stage checks: one good bundle round-trips; one bad bundle per
//! refusal reason is refused with that reason, and the running deployment is untouched.

use takt::manifest::{self, Catalog, Deployment, TaskSignature};
use takt::ota::bundle::{
    self, check_entry_name, BundleReadError, Entry, Fragment, NameProblem, TrustedKeys,
};
use takt::ota::check::{check_stage, Installed, StageRefusal};
use takt::port::Message;

takt::message! {
    #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct Tick {
        pub job: u64,
    }
}

/// A `Tick` as another build of the producer might declare it: same name, wider.
mod wide {
    takt::message! {
        #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct Tick {
            pub job: u64,
            pub extra: u64,
        }
    }
}

const MANIFEST: &str = r#"
[deployment]
name = "ota-test"
cores = [0]
priority = 50

[[app]]
name = "producer"

[[app]]
name = "consumer"

[[task]]
name = "w"
app = "producer"
period = "10ms"
budget = "2ms"
let = "5ms"
core = 0

[[task]]
name = "r"
app = "consumer"
period = "10ms"
offset = "5ms"
budget = "2ms"
let = "5ms"
core = 0

[[channel]]
topic = "tick"
type = "Tick"
writer = "w"
readers = ["r"]

[[mode]]
name = "run"
default = true
tasks = ["w", "r"]
"#;

fn layouts() -> takt::ota::bundle::Layouts {
    [("Tick".to_string(), Tick::layout())].into_iter().collect()
}

fn catalog() -> Catalog {
    let mut c = Catalog::default();
    c.types.insert("Tick", Tick::fingerprint());
    c.tasks.insert(
        "w".to_string(),
        TaskSignature {
            reads: vec![],
            writes: vec![("tick".to_string(), "Tick")],
            params: Vec::new(),
        },
    );
    c.tasks.insert(
        "r".to_string(),
        TaskSignature {
            reads: vec![("tick".to_string(), "Tick")],
            writes: vec![],
            params: Vec::new(),
        },
    );
    c
}

fn deployment() -> Deployment {
    manifest::parse("ota-test.toml", MANIFEST, &catalog(), 2).expect("the test manifest is valid")
}

fn key(n: u8) -> ed25519_dalek::SigningKey {
    bundle::signing_key(&[n; 32])
}

fn trusted(n: u8) -> TrustedKeys {
    let mut t = TrustedKeys::new();
    t.add(&bundle::public_key(&[n; 32])).expect("a valid key");
    t
}

fn fragment(version: u64) -> Fragment {
    Fragment::from_deployment(
        &deployment(),
        &catalog(),
        &layouts(),
        "producer",
        version,
        "test",
    )
    .expect("producer is in the manifest")
}

fn entries() -> Vec<Entry> {
    vec![
        Entry {
            name: "producer".to_string(),
            mode: 0o755,
            bytes: (0..10_000u32).map(|i| (i % 251) as u8).collect(),
        },
        Entry {
            name: "etc/gap.toml".to_string(),
            mode: 0o644,
            bytes: b"time_gap_s = 1.8\n".to_vec(),
        },
    ]
}

fn signed(fr: &Fragment, n: u8) -> Vec<u8> {
    bundle::sign(fr, &entries(), &key(n)).expect("a well-formed bundle")
}

fn installed(version: u64) -> Installed {
    Installed {
        version,
        bad_versions: vec![],
    }
}

#[test]
fn good_bundle_round_trips_and_passes_the_stage_checks() {
    let fr = fragment(2);
    let b = bundle::read(&signed(&fr, 1), &trusted(1)).expect("verifies");
    assert_eq!(b.fragment, fr);
    assert_eq!(b.entries, entries());
    assert_eq!(b.signer, bundle::public_key(&[1; 32]));
    let d = deployment();
    let updated = check_stage(&d, &catalog(), &layouts(), &installed(1), &b).expect("compatible");
    assert_eq!(updated, d, "same timing gives the same deployment");
}

#[test]
fn refuses_bundle_signed_with_untrusted_key() {
    let err = bundle::read(&signed(&fragment(2), 2), &trusted(1)).unwrap_err();
    assert!(matches!(err, BundleReadError::UntrustedKey { .. }), "{err}");
    assert!(err.to_string().contains("not among the trusted keys"));
}

#[test]
fn refuses_bundle_with_any_flipped_byte_in_the_signed_part_or_signature() {
    let good = signed(&fragment(2), 1);
    let keys = trusted(1);
    // Every byte after the header: the fragment, the entries and the signature. The
    // signer key bytes are left out: flipping them names an untrusted key (tested above).
    let signer_at = good.len() - bundle::TRAILER_BYTES;
    let mut refused = 0;
    for i in 12..good.len() {
        if (signer_at..signer_at + 32).contains(&i) {
            continue;
        }
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        let err = bundle::read(&bad, &keys).unwrap_err();
        // Bytes 20..24 are the carried key document's length: the document is read (and
        // its own root signature checked) before the bundle's signature, since it may be
        // what makes the signer trusted; a flipped length is refused there.
        let key_doc_length = (20..24).contains(&i);
        assert!(
            matches!(err, BundleReadError::BadSignature { .. })
                || (key_doc_length
                    && matches!(
                        err,
                        BundleReadError::BadKeyDocument { .. }
                            | BundleReadError::KeyDocumentTooLarge { .. }
                            | BundleReadError::Truncated { .. }
                    )),
            "byte {i}: {err}"
        );
        refused += 1;
    }
    assert!(refused > 10_000);
}

#[test]
fn refuses_bad_magic_unknown_format_and_truncation() {
    let good = signed(&fragment(2), 1);
    let keys = trusted(1);
    let mut bad = good.clone();
    bad[0] = b'X';
    assert_eq!(bundle::read(&bad, &keys), Err(BundleReadError::BadMagic));
    let mut bad = good.clone();
    bad[8] = 9;
    assert_eq!(
        bundle::read(&bad, &keys),
        Err(BundleReadError::UnsupportedFormat { found: 9 })
    );
    for len in [0, 5, 11, 20, 100] {
        let err = bundle::read(&good[..len], &keys).unwrap_err();
        assert!(
            matches!(err, BundleReadError::Truncated { .. }),
            "{len}: {err}"
        );
    }
    // A cut in the middle leaves content bytes where the signer and signature belong, so
    // verification refuses it before anything is parsed; without verification the
    // structure itself shows the truncation.
    let cut = &good[..good.len() / 2];
    let err = bundle::read(cut, &keys).unwrap_err();
    assert!(
        matches!(
            err,
            BundleReadError::UntrustedKey { .. } | BundleReadError::BadSignature { .. }
        ),
        "{err}"
    );
    let err = bundle::parse_unverified(cut).unwrap_err();
    assert!(matches!(err, BundleReadError::Truncated { .. }), "{err}");
}

#[test]
fn refuses_path_traversal_links_duplicates_and_oversize_entries_even_when_signed() {
    let fr = fragment(2);
    let k = key(1);
    let keys = trusted(1);
    let read = |raw: &[(String, u8, u32, Vec<u8>)]| {
        bundle::read(&bundle::sign_raw_for_tests(&fr, raw, &k), &keys).unwrap_err()
    };
    let file = |name: &str| (name.to_string(), 0u8, 0o755u32, b"x".to_vec());
    assert_eq!(
        read(&[file("../evil")]),
        BundleReadError::BadEntryName {
            name: "../evil".to_string(),
            problem: NameProblem::ParentComponent
        }
    );
    assert!(matches!(
        read(&[file("/etc/passwd")]),
        BundleReadError::BadEntryName {
            problem: NameProblem::Absolute,
            ..
        }
    ));
    assert!(matches!(
        read(&[file("a//b")]),
        BundleReadError::BadEntryName {
            problem: NameProblem::EmptyOrDotComponent,
            ..
        }
    ));
    assert_eq!(
        read(&[("lib".to_string(), 1, 0o777, b"/etc".to_vec())]),
        BundleReadError::LinkEntry {
            name: "lib".to_string()
        }
    );
    assert_eq!(
        read(&[("hard".to_string(), 2, 0o644, vec![])]),
        BundleReadError::LinkEntry {
            name: "hard".to_string()
        }
    );
    assert_eq!(
        read(&[file("a"), file("a")]),
        BundleReadError::DuplicateEntry {
            name: "a".to_string()
        }
    );
    assert_eq!(
        read(&[("suid".to_string(), 0, 0o4755, vec![])]),
        BundleReadError::BadMode {
            name: "suid".to_string(),
            mode: 0o4755
        }
    );
    assert_eq!(read(&[]), BundleReadError::NoEntries);
    // An entry header that claims more than the limit is refused before any allocation.
    let mut big = bundle::sign_raw_for_tests(&fr, &[file("big")], &k);
    let len_at = big.len() - bundle::TRAILER_BYTES - 1 - 8;
    big[len_at..len_at + 8].copy_from_slice(&(bundle::MAX_ENTRY_BYTES + 1).to_le_bytes());
    let err = bundle::parse_unverified(&big).unwrap_err();
    assert_eq!(
        err,
        BundleReadError::EntryTooLarge {
            name: "big".to_string(),
            len: bundle::MAX_ENTRY_BYTES + 1
        }
    );
    // The writer refuses what the reader would refuse.
    let bad = [Entry {
        name: "../x".to_string(),
        mode: 0o644,
        bytes: vec![],
    }];
    assert!(bundle::sign(&fr, &bad, &k).is_err());
}

#[test]
fn entry_names_stay_inside_the_slot() {
    for ok in ["app", "lib/libx.so", "a.b/c..d", "...", "x-y_z"] {
        assert_eq!(check_entry_name(ok), Ok(()), "{ok}");
    }
    let bad = [
        ("", NameProblem::Empty),
        ("..", NameProblem::ParentComponent),
        ("a/../b", NameProblem::ParentComponent),
        ("a/..", NameProblem::ParentComponent),
        ("/a", NameProblem::Absolute),
        ("a/", NameProblem::EmptyOrDotComponent),
        ("./a", NameProblem::EmptyOrDotComponent),
        ("a\\..\\b", NameProblem::ForbiddenCharacter),
        ("a\0", NameProblem::ForbiddenCharacter),
    ];
    for (name, problem) in bad {
        assert_eq!(check_entry_name(name), Err(problem), "{name:?}");
    }
    assert_eq!(
        check_entry_name(&"a".repeat(256)),
        Err(NameProblem::TooLong)
    );
}

#[test]
fn trusted_keys_refuse_bad_hex() {
    let mut t = TrustedKeys::new();
    assert!(t.add_hex("abc").is_err());
    assert!(t.add_hex(&"zz".repeat(32)).is_err());
    let hex = takt::ota::to_hex(&bundle::public_key(&[3; 32]));
    t.add_hex(&hex).expect("a valid key");
    t.add_hex(&hex.to_uppercase()).expect("either case");
    // The same key in either case is one key (adding it again only re-scopes it).
    assert_eq!(t.len(), 1);
    assert!(matches!(
        bundle::read(&signed(&fragment(2), 1), &TrustedKeys::new()),
        Err(BundleReadError::NoTrustedKeys)
    ));
}

fn verified(fr: &Fragment) -> bundle::Bundle {
    bundle::read(&signed(fr, 1), &trusted(1)).expect("verifies")
}

#[test]
fn stage_refuses_older_or_equal_version() {
    let d = deployment();
    for v in [1, 2] {
        let err = check_stage(
            &d,
            &catalog(),
            &layouts(),
            &installed(2),
            &verified(&fragment(v)),
        )
        .unwrap_err();
        assert_eq!(
            err,
            StageRefusal::NotNewer {
                app: "producer".to_string(),
                bundle_version: v,
                installed_version: 2
            }
        );
        assert!(err.to_string().contains("anti-rollback"));
    }
    let bad = Installed {
        version: 1,
        bad_versions: vec![3],
    };
    let err = check_stage(&d, &catalog(), &layouts(), &bad, &verified(&fragment(3))).unwrap_err();
    assert!(matches!(err, StageRefusal::KnownBad { version: 3, .. }));
}

#[test]
fn stage_refuses_port_fingerprint_mismatch() {
    let d = deployment();
    let mut fr = fragment(2);
    fr.ports[0].layout = wide::Tick::fingerprint().into();
    let err = check_stage(&d, &catalog(), &layouts(), &installed(1), &verified(&fr)).unwrap_err();
    assert!(
        matches!(&err, StageRefusal::FingerprintMismatch { topic, .. } if topic == "tick"),
        "{err}"
    );
    assert!(err.to_string().contains("size 16"), "{err}");
    let mut fr = fragment(2);
    fr.ports[0].topic = "tock".to_string();
    let err = check_stage(&d, &catalog(), &layouts(), &installed(1), &verified(&fr)).unwrap_err();
    assert_eq!(
        err,
        StageRefusal::UnknownTopic {
            topic: "tock".to_string()
        }
    );
}

#[test]
fn stage_refuses_unschedulable_budgets() {
    let d = deployment();
    let mut fr = fragment(2);
    // 9 ms of `w` plus 2 ms of `r` in every 10 ms on one core cannot fit.
    fr.tasks[0].budget_ns = 9_000_000;
    fr.tasks[0].let_ns = 10_000_000;
    let err = check_stage(&d, &catalog(), &layouts(), &installed(1), &verified(&fr)).unwrap_err();
    assert!(
        matches!(&err, StageRefusal::Unschedulable { reasons } if !reasons.is_empty()),
        "{err}"
    );
    // A larger budget that still fits is accepted and returned.
    let mut fr = fragment(2);
    fr.tasks[0].budget_ns = 4_000_000;
    let updated =
        check_stage(&d, &catalog(), &layouts(), &installed(1), &verified(&fr)).expect("fits");
    assert_eq!(updated.tasks[0].budget_ns, 4_000_000);
    assert_eq!(
        d.tasks[0].budget_ns, 2_000_000,
        "the running deployment is untouched"
    );
}

#[test]
fn stage_refuses_timing_that_misses_a_chain_requirement() {
    // w (LET 5 ms) is read by r at 5 ms, visible at 10 ms: a data age of 10 ms, which the
    // requirement allows exactly.
    let text = format!(
        "{MANIFEST}\n[[chain]]\nname = \"wr\"\ntasks = [\"w\", \"r\"]\nmax_data_age = \"10ms\"\n"
    );
    let d = manifest::parse("ota-test.toml", &text, &catalog(), 2).expect("valid");
    check_stage(
        &d,
        &catalog(),
        &layouts(),
        &installed(1),
        &verified(&fragment(2)),
    )
    .expect("the installed timing meets the requirement");
    // Moved 1 ms later, w is visible at 6 ms, after r's release at 5: r reads the sample
    // of 10 ms before, 19 ms old when r's output is visible.
    let mut fr = fragment(2);
    fr.tasks[0].offset_ns = 1_000_000;
    let err = check_stage(&d, &catalog(), &layouts(), &installed(1), &verified(&fr)).unwrap_err();
    let StageRefusal::ChainRequirements { violations } = &err else {
        panic!("refused for the chain requirement, not: {err}");
    };
    assert_eq!(violations.len(), 1, "{err}");
    assert_eq!(
        (violations[0].bound_ns, violations[0].excess_ns),
        (19_000_000, 9_000_000)
    );
    let text = err.to_string();
    assert!(
        text.contains("does not meet its chain requirements")
            && text.contains(
                "chain wr: exact LET data age bound 19ms exceeds max_data_age 10ms by 9ms"
            )
            && text.contains("the hop w -> r (14ms"),
        "{text}"
    );
}

#[test]
fn stage_refuses_tasks_that_are_not_the_apps() {
    let d = deployment();
    let mut fr = fragment(2);
    fr.tasks[0].name = "r".to_string();
    let err = check_stage(&d, &catalog(), &layouts(), &installed(1), &verified(&fr)).unwrap_err();
    assert!(matches!(err, StageRefusal::TaskOfOtherApp { .. }), "{err}");
    let mut fr = fragment(2);
    fr.tasks.clear();
    let err = check_stage(&d, &catalog(), &layouts(), &installed(1), &verified(&fr)).unwrap_err();
    assert!(matches!(err, StageRefusal::MissingTask { .. }), "{err}");
    let mut fr = fragment(2);
    fr.tasks[0].budget_ns = fr.tasks[0].period_ns + 1;
    let err = check_stage(&d, &catalog(), &layouts(), &installed(1), &verified(&fr)).unwrap_err();
    assert!(matches!(err, StageRefusal::BadTiming { .. }), "{err}");
}

#[test]
fn fragment_lists_the_apps_tasks_and_ports() {
    let fr = fragment(7);
    assert_eq!(fr.version, 7);
    assert_eq!(fr.tasks.len(), 1);
    assert_eq!(fr.tasks[0].name, "w");
    assert_eq!(fr.tasks[0].budget_ns, 2_000_000);
    assert_eq!(fr.ports.len(), 1);
    assert!(fr.ports[0].layout.same_type(&Tick::fingerprint().into()));
    // The structure travels in the bundle, so a refusal at staging can name the field.
    assert_eq!(fr.ports[0].layout.structure, Some(Tick::layout()));
}

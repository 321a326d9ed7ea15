//! Unit tests of the manifest module's internals: positions, the error format, file
//! reading bounds, arithmetic limits, and a property test that no input makes `parse`
//! panic. The rule-by-rule tests against a real `Registry` are in
//! `runtime/tests/manifest_rules.rs`.

use std::io::Write;
use std::path::PathBuf;

use proptest::prelude::*;

use super::source::{Diagnostics, Source, MAX_REPORTED_ERRORS};
use super::*;

/// The valid manifest every test derives its cases from.
const GOOD: &str = include_str!("testdata/good.toml");

fn fingerprint(name: &'static str) -> Fingerprint {
    Fingerprint {
        name,
        size: 16,
        align: 8,
        hash: 0,
    }
}

fn ports(list: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
    list.iter().map(|(t, ty)| (t.to_string(), *ty)).collect()
}

/// The catalog `GOOD` is written against, built by hand (no iceoryx2 types needed).
fn catalog() -> Catalog {
    let mut c = Catalog::default();
    for ty in ["RadarTrack", "Objects", "Command"] {
        c.types.insert(ty, fingerprint(ty));
    }
    let mut task = |name: &str, reads: &[(&str, &'static str)], writes: &[(&str, &'static str)]| {
        c.tasks.insert(
            name.to_string(),
            TaskSignature {
                reads: ports(reads),
                writes: ports(writes),
                params: Vec::new(),
            },
        );
    };
    task("radar", &[], &[("radar_track", "RadarTrack")]);
    task("camera", &[], &[("camera_objects", "Objects")]);
    task(
        "perception",
        &[("radar_track", "RadarTrack"), ("camera_objects", "Objects")],
        &[("objects", "Objects")],
    );
    task(
        "planner",
        &[("objects", "Objects")],
        &[("command", "Command")],
    );
    task("controller", &[("command", "Command")], &[]);
    task("slow_a", &[], &[]);
    task("slow_b", &[], &[]);
    c
}

fn errors_of(text: &str) -> Vec<ManifestError> {
    match parse("m.toml", text, &catalog(), 2) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors,
    }
}

/// A file in the temp dir unique to this process and test.
fn temp_file(test: &str) -> PathBuf {
    std::env::temp_dir().join(format!("takt-manifest-{}-{test}.toml", std::process::id()))
}

#[test]
fn the_good_manifest_is_accepted() {
    let d = parse("good.toml", GOOD, &catalog(), 2).map_err(|e| e.to_string());
    assert!(d.is_ok(), "{d:?}");
}

#[test]
fn positions_are_one_based_lines_and_character_columns() {
    let s = Source::new("ab\nµx = 1\n\nlast");
    assert_eq!(s.position(0), (1, 1));
    assert_eq!(s.position(2), (1, 3), "the newline itself is on line 1");
    assert_eq!(s.position(3), (2, 1));
    // `µ` is two bytes: `x` is the second character of line 2.
    assert_eq!(s.position(5), (2, 2));
    assert_eq!(s.position(11), (3, 1));
    assert_eq!(s.position(12), (4, 1));
    // Offsets past the end or inside a character are clamped, never a panic.
    assert_eq!(s.position(1_000), (4, 5));
    assert_eq!(s.position(4), (2, 2));
    assert_eq!(Source::new("").position(0), (1, 1));
}

#[test]
fn display_is_file_line_column_field_message_one_per_line() {
    let e = ManifestLoadError {
        errors: vec![
            ManifestError {
                file: "a.toml".into(),
                line: 3,
                column: 9,
                field: "task.radar.budget".into(),
                message: "budget must be greater than 0".into(),
            },
            ManifestError {
                file: "a.toml".into(),
                line: 4,
                column: 1,
                field: String::new(),
                message: "invalid TOML: x".into(),
            },
            ManifestError {
                file: "gone.toml".into(),
                line: 0,
                column: 0,
                field: String::new(),
                message: "cannot read the manifest: No such file".into(),
            },
        ],
    };
    assert_eq!(
        e.to_string(),
        "a.toml:3:9: task.radar.budget: budget must be greater than 0\n\
         a.toml:4:1: invalid TOML: x\n\
         gone.toml: cannot read the manifest: No such file"
    );
}

#[test]
fn messages_stay_on_one_line() {
    let mut cx = Diagnostics::new("f", "x");
    cx.error(0, "f", "two\nlines\r\n");
    let errors = cx.into_errors();
    assert_eq!(errors.len(), 1);
    assert!(!errors[0].message.contains('\n') && !errors[0].message.contains('\r'));
}

#[test]
fn errors_are_sorted_by_position_and_capped() {
    let text = "a\nb\nc\n";
    let mut cx = Diagnostics::new("f", text);
    cx.error(4, "third", "m");
    cx.error(0, "first", "m");
    cx.error(2, "second", "m");
    let fields: Vec<String> = cx.into_errors().into_iter().map(|e| e.field).collect();
    assert_eq!(fields, ["first", "second", "third"]);

    let mut cx = Diagnostics::new("f", text);
    for _ in 0..MAX_REPORTED_ERRORS + 7 {
        cx.error(0, "x", "m");
    }
    let errors = cx.into_errors();
    assert_eq!(errors.len(), MAX_REPORTED_ERRORS + 1);
    assert!(
        errors[MAX_REPORTED_ERRORS]
            .message
            .contains("7 more errors"),
        "{:?}",
        errors[MAX_REPORTED_ERRORS]
    );
}

#[test]
fn empty_and_comment_only_files_get_one_line_saying_what_a_manifest_needs() {
    for text in ["", "   \n\n", "# just a comment\n"] {
        let errors = errors_of(text);
        assert_eq!(errors.len(), 1, "{text:?}: {errors:?}");
        assert!(errors[0].message.contains("the manifest is empty"));
        assert!(errors[0].message.contains("[deployment]"));
        assert!(errors[0].message.contains("[[task]]"));
        let shown = ManifestLoadError { errors }.to_string();
        assert_eq!(shown.lines().count(), 1);
    }
}

#[test]
fn a_duplicate_key_is_located_on_its_second_definition() {
    let text = "[deployment]\nname = \"a\"\nname = \"b\"\n";
    let errors = errors_of(text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0].line, errors[0].column), (3, 1));
    assert!(
        errors[0].message.contains("duplicate key `name`"),
        "{errors:?}"
    );
}

#[test]
fn a_missing_file_is_one_line_with_the_os_reason() {
    let path = temp_file("does-not-exist");
    let err = load(&path, &catalog(), 2).expect_err("missing file");
    assert_eq!(err.errors.len(), 1);
    assert_eq!((err.errors[0].line, err.errors[0].column), (0, 0));
    let shown = err.to_string();
    assert_eq!(shown.lines().count(), 1);
    assert!(shown.starts_with(&format!("{}: cannot read the manifest: ", path.display())));
    assert!(shown.contains("No such file"), "{shown}");
}

#[test]
fn a_directory_is_refused_with_the_os_reason() {
    let err = load(&std::env::temp_dir(), &catalog(), 2).expect_err("a directory");
    assert_eq!(err.errors.len(), 1);
    assert!(
        err.errors[0].message.contains("cannot read the manifest"),
        "{err}"
    );
}

#[test]
fn a_huge_file_is_refused_without_being_read() {
    let path = temp_file("huge");
    {
        let f = std::fs::File::create(&path).expect("create temp file");
        // Sparse: 64 GiB on paper, nothing on disk; reading it whole would take minutes
        // and all the memory, so only the size check can make this test finish.
        f.set_len(64 << 30).expect("extend temp file");
    }
    let err = load(&path, &catalog(), 2).expect_err("too large");
    let _ = std::fs::remove_file(&path);
    assert_eq!(err.errors.len(), 1);
    assert!(err.errors[0].message.contains("larger than"), "{err}");

    let big = "#".repeat(limits::MAX_MANIFEST_BYTES as usize + 1);
    let err = parse("big.toml", &big, &catalog(), 2).expect_err("too large text");
    assert!(err.errors[0].message.contains("larger than"), "{err}");
}

#[test]
fn a_file_of_exactly_the_limit_is_read() {
    let path = temp_file("at-limit");
    let mut text = GOOD.to_string();
    let filler = limits::MAX_MANIFEST_BYTES as usize - text.len();
    text.push_str(&"#".repeat(filler));
    assert_eq!(text.len() as u64, limits::MAX_MANIFEST_BYTES);
    std::fs::write(&path, &text).expect("write temp file");
    let d = load(&path, &catalog(), 2);
    let _ = std::fs::remove_file(&path);
    assert!(d.is_ok(), "{:?}", d.err().map(|e| e.to_string()));
}

#[test]
fn non_utf8_bytes_are_located() {
    let path = temp_file("latin1");
    let mut f = std::fs::File::create(&path).expect("create temp file");
    f.write_all(b"[deployment]\nname = \"caf\xe9\"\n")
        .expect("write");
    drop(f);
    let err = load(&path, &catalog(), 2).expect_err("not UTF-8");
    let _ = std::fs::remove_file(&path);
    assert_eq!(err.errors.len(), 1);
    assert_eq!((err.errors[0].line, err.errors[0].column), (2, 12));
    assert!(err.errors[0].message.contains("not UTF-8"), "{err}");
}

#[test]
fn the_hyperperiod_overflow_is_caught_not_wrapped() {
    // 10 s is within the limit; the next period shares no factor with it, so the LCM is
    // about 2e19 ns, past u64. An unchecked multiplication would wrap to a small,
    // plausible value and let the manifest through.
    let text = GOOD
        .replace(
            "period = \"20ms\"\nbudget = \"3ms\"",
            "period = \"10s\"\nbudget = \"3ms\"",
        )
        .replace("period = \"5ms\"", "period = \"1999999973ns\"");
    assert_ne!(text, GOOD);
    let errors = errors_of(&text);
    let e = errors
        .iter()
        .find(|e| e.field == "task.controller.period")
        .unwrap_or_else(|| panic!("{errors:#?}"));
    assert!(e.message.contains("overflow"), "{e:?}");
}

#[test]
fn a_wrong_duration_says_what_is_allowed() {
    let cases = [
        ("\"-10ms\"", "negative durations are not allowed"),
        ("-10", "negative durations are not allowed"),
        ("10", "bare number"),
        ("\"10\"", "no unit"),
        ("\"1.5ms\"", "whole numbers"),
        ("\"10 parsecs\"", "allowed units"),
        ("\"99999999999999999999s\"", "too large"),
        ("true", "expected a duration string"),
    ];
    for (value, phrase) in cases {
        let text = GOOD.replacen("budget = \"500us\"", &format!("budget = {value}"), 1);
        let errors = errors_of(&text);
        assert_eq!(errors.len(), 1, "{value}: {errors:#?}");
        assert_eq!(errors[0].field, "task.radar.budget");
        assert!(errors[0].message.contains(phrase), "{value}: {errors:?}");
    }
}

#[test]
fn unusable_task_names_fall_back_to_indexed_paths() {
    let text = GOOD.replacen("name = \"radar\"", "name = \"ra dar\"", 1);
    let errors = errors_of(&text);
    assert!(
        errors
            .iter()
            .any(|e| e.field == "task[0].name" && e.message.contains("contains ' '")),
        "{errors:#?}"
    );
}

/// Random damage to the good manifest: the shapes real mistakes and corruption take.
#[derive(Clone, Debug)]
enum Damage {
    FlipByte { at: usize, bit: u8 },
    Truncate { at: usize },
    DeleteLine { line: usize },
    DuplicateLine { line: usize },
    InsertText { at: usize, text: String },
}

fn damage() -> impl Strategy<Value = Damage> {
    let len = GOOD.len();
    let lines = GOOD.lines().count();
    prop_oneof![
        (0..len, 0u8..8).prop_map(|(at, bit)| Damage::FlipByte { at, bit }),
        (0..len).prop_map(|at| Damage::Truncate { at }),
        (0..lines).prop_map(|line| Damage::DeleteLine { line }),
        (0..lines).prop_map(|line| Damage::DuplicateLine { line }),
        (0..len, "[\\[\\]=\"{},.\\-a-z0-9 \n]{0,12}")
            .prop_map(|(at, text)| Damage::InsertText { at, text }),
    ]
}

fn apply(text: &str, damage: &[Damage]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for d in damage {
        match d {
            Damage::FlipByte { at, bit } => {
                if let Some(b) = bytes.get_mut(*at) {
                    *b ^= 1 << bit;
                }
            }
            Damage::Truncate { at } => bytes.truncate(*at),
            Damage::DeleteLine { line } | Damage::DuplicateLine { line } => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let mut lines: Vec<&str> = text.lines().collect();
                if *line < lines.len() {
                    if matches!(d, Damage::DeleteLine { .. }) {
                        lines.remove(*line);
                    } else {
                        lines.insert(*line, lines[*line]);
                    }
                }
                bytes = lines.join("\n").into_bytes();
            }
            Damage::InsertText { at, text } => {
                let at = (*at).min(bytes.len());
                bytes.splice(at..at, text.bytes());
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `parse` either accepts or gives located, one-line errors; it never panics.
fn check_outcome(text: &str) -> Result<(), TestCaseError> {
    let lines = text.lines().count().max(1);
    match parse("fuzz.toml", text, &catalog(), 2) {
        Ok(d) => {
            prop_assert!(d.hyperperiod_ns > 0);
            prop_assert!(!d.modes.is_empty() && d.default_mode < d.modes.len());
        }
        Err(e) => {
            prop_assert!(!e.errors.is_empty());
            for err in &e.errors {
                prop_assert!(err.line >= 1 && err.line <= lines + 1, "{err:?}");
                prop_assert!(err.column >= 1, "{err:?}");
                prop_assert!(!err.message.is_empty() && !err.message.contains('\n'));
            }
            let shown = e.to_string();
            prop_assert_eq!(shown.lines().count(), e.errors.len());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        check_outcome(&text)?;
    }

    #[test]
    fn toml_like_text_never_panics(text in "([\\[\\]a-z_.=\"{},0-9\n -]|task|mode|period|\"10ms\"){0,200}") {
        check_outcome(&text)?;
    }

    #[test]
    fn damaged_manifests_never_panic(damage in prop::collection::vec(damage(), 1..6)) {
        check_outcome(&apply(GOOD, &damage))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

    /// Through the file path too: arbitrary bytes, not just valid UTF-8.
    #[test]
    fn arbitrary_bytes_from_a_file_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let path = temp_file("fuzz-bytes");
        std::fs::write(&path, &bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let outcome = load(&path, &catalog(), 2);
        let _ = std::fs::remove_file(&path);
        if let Err(e) = outcome {
            prop_assert!(!e.errors.is_empty());
        }
    }
}

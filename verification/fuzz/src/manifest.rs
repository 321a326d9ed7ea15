//! Fuzz checks of the manifest parser and of the planner behind it.
//!
//! Owns: the properties every manifest text must satisfy when `takt::manifest::parse`
//! reads it, and those every accepted manifest must satisfy when `takt::plan` plans it.
//! It must never hide a panic of the code under test (no `catch_unwind`): a panic
//! anywhere below is the bug the fuzzer is looking for.
//!
//! Properties, besides "no panic":
//! * parsing is a function of the text: a second parse of the same text gives the same
//!   deployment or the same errors;
//! * a refusal has at least one error, in file order, each naming the file it was given,
//!   a line and column inside the text, and a one-line message that is not the parser's
//!   own "refused without a reason" guard;
//! * every plan that synthesis returns passes the independent verifier, and a plan and a
//!   refusal both render to text.

use takt::manifest::{self, Deployment, ManifestLoadError};
use takt::plan;
use takt::task::Registry;

use crate::catalogs::Catalogs;

/// The file name errors are expected to carry.
pub const FILE_NAME: &str = "fuzz.toml";

/// Cores of the machine the manifest is validated for: fixed, so a crash input
/// reproduces on any host. Four, so the seeds (cores 0 and 1) validate and the fuzzer can
/// still reach the "core out of range" rule.
pub const CORES: usize = 4;

/// Parses `bytes` against both catalogs and checks the parser's properties.
/// Returns the deployments that were accepted (0, 1 or 2).
pub fn check_manifest(catalogs: &Catalogs, bytes: &[u8]) -> Vec<Deployment> {
    // Not-UTF-8 input is refused by `manifest::load` before `parse` sees it; the lossy
    // conversion still lets such inputs exercise the parser instead of being wasted.
    let text = String::from_utf8_lossy(bytes);
    let mut accepted = Vec::new();
    for registry in [&catalogs.acc, &catalogs.rules] {
        if let Some(d) = check_one(registry, &text) {
            accepted.push(d);
        }
    }
    accepted
}

/// [`check_manifest`], then plans every accepted deployment and checks the planner's
/// properties.
pub fn check_manifest_plan(catalogs: &Catalogs, bytes: &[u8]) {
    for deployment in check_manifest(catalogs, bytes) {
        check_plan(&deployment);
    }
}

fn check_one(registry: &Registry, text: &str) -> Option<Deployment> {
    let first = manifest::parse(FILE_NAME, text, registry.catalog(), CORES);
    let second = manifest::parse(FILE_NAME, text, registry.catalog(), CORES);
    assert_eq!(
        first, second,
        "two parses of the same manifest text disagree"
    );
    match first {
        Ok(deployment) => Some(deployment),
        Err(refusal) => {
            check_refusal(text, &refusal);
            None
        }
    }
}

fn check_refusal(text: &str, refusal: &ManifestLoadError) {
    assert!(
        !refusal.errors.is_empty(),
        "a refused manifest has no errors"
    );
    // Byte length of each line, split where `manifest::source` splits them.
    let line_bytes: Vec<usize> = text.split('\n').map(str::len).collect();
    let mut previous = (0, 0);
    for error in &refusal.errors {
        assert_eq!(error.file, FILE_NAME, "error names another file: {error}");
        assert!(
            error.line >= 1 && error.line <= line_bytes.len(),
            "error line {} outside the {} lines of the text: {error}",
            error.line,
            line_bytes.len()
        );
        // Columns count characters, or bytes inside a broken character; either way at
        // most one past the line's last byte.
        let max_column = line_bytes[error.line - 1] + 1;
        assert!(
            error.column >= 1 && error.column <= max_column,
            "error column {} outside line {} ({} bytes): {error}",
            error.column,
            error.line,
            max_column - 1
        );
        assert!(
            (error.line, error.column) >= previous,
            "errors not in file order: {error} after line {} column {}",
            previous.0,
            previous.1
        );
        previous = (error.line, error.column);
        assert!(!error.message.is_empty(), "an error without a message");
        assert!(
            !error.message.contains(['\n', '\r']),
            "an error message spans lines: {error:?}"
        );
        assert!(
            !error.message.starts_with("internal error"),
            "the parser refused a manifest without a reason: {error}"
        );
    }
    assert!(!refusal.to_string().is_empty());
}

fn check_plan(deployment: &Deployment) {
    match plan::synthesize(deployment) {
        Ok(p) => {
            if let Err(violations) = plan::verify(deployment, &p) {
                let list: Vec<&str> = violations.iter().map(|v| v.message.as_str()).collect();
                panic!(
                    "synthesis returned a plan the verifier refuses:\n{}",
                    list.join("\n")
                );
            }
            assert!(!plan::render_text(deployment, &p).is_empty());
        }
        Err(unschedulable) => {
            assert!(
                !unschedulable.reasons.is_empty(),
                "synthesis refused a deployment without a reason"
            );
            assert!(!unschedulable.to_string().is_empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACC: &str = include_str!("../../../config/acc.toml");
    const GOOD: &str = include_str!("../../../runtime/src/manifest/testdata/good.toml");

    #[test]
    fn each_seed_is_accepted_by_its_own_catalog() {
        let catalogs = Catalogs::new();
        let acc = check_manifest(&catalogs, ACC.as_bytes());
        assert_eq!(
            acc.len(),
            1,
            "config/acc.toml validates against the ACC catalog"
        );
        assert_eq!(acc[0].name, "acc");
        let good = check_manifest(&catalogs, GOOD.as_bytes());
        assert_eq!(
            good.len(),
            1,
            "good.toml validates against the rules catalog"
        );
        assert_eq!(good[0].name, "acc-test");
    }

    #[test]
    fn each_seed_plans_and_verifies() {
        let catalogs = Catalogs::new();
        check_manifest_plan(&catalogs, ACC.as_bytes());
        check_manifest_plan(&catalogs, GOOD.as_bytes());
    }

    #[test]
    fn broken_manifests_pass_the_refusal_checks() {
        let catalogs = Catalogs::new();
        let cut = &GOOD.as_bytes()[..GOOD.len() / 2];
        let inputs: [&[u8]; 5] = [
            b"",
            b"[deployment\n",
            b"\xff\xfe\n[[task]]\nname = 3",
            cut,
            "[deployment]\nname = \"\u{e9}\u{e9}\"\ncores = [9]\n".as_bytes(),
        ];
        for input in inputs {
            assert!(check_manifest(&catalogs, input).is_empty());
        }
    }

    #[test]
    #[should_panic(expected = "outside the")]
    fn an_error_pointing_past_the_text_is_caught() {
        // The refusal check itself must be able to fail: an error on line 3 of a
        // one-line text is refused.
        let refusal = ManifestLoadError {
            errors: vec![manifest::ManifestError {
                file: FILE_NAME.to_string(),
                line: 3,
                column: 1,
                field: String::new(),
                message: "x".to_string(),
            }],
        };
        check_refusal("one line", &refusal);
    }
}

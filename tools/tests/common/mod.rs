//! What several test files of the CLI share.

use std::path::PathBuf;

/// `config/acc.toml`'s text with its apps' executables made absolute, so a copy written
/// elsewhere still names the demo's executables (relative paths resolve against the
/// manifest's own directory).
#[allow(dead_code)] // not every test file writes manifests
pub fn absolute_executables(text: &str) -> String {
    let release = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/");
    text.replace(
        "executable = \"../target/release/",
        &format!("executable = \"{}", release.display()),
    )
}

/// What a `takt run` summary's `attribution:` line says about the run's misses (see
/// `takt::dispatch::attribution`).
#[allow(dead_code)] // not every test file judges runs
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunVerdict {
    /// No overrun, skip or deadline miss.
    Kept,
    /// Every miss is the platform's: `(count, the attribution line)`.
    PlatformOnly(u64, String),
    /// Some miss is takt's or the task's (or the summary has no attribution line).
    Takt(String),
}

/// Judges a `takt run` summary by its line `attribution: platform N (overruns a, deadline
/// misses b, skips c), takt/task M (overruns d, deadline misses e, skips f); ...`: by the
/// deadline misses and skips of each class, which are what can make outputs differ (an
/// overrun that neither missed nor skipped leaves them alone, whoever caused it).
#[allow(dead_code)]
pub fn run_verdict(stdout: &str) -> RunVerdict {
    let Some(line) = stdout.lines().find(|l| l.starts_with("attribution: ")) else {
        return RunVerdict::Takt(format!("no attribution line in the summary:\n{stdout}"));
    };
    // The misses and skips inside the parentheses after `class`.
    let misses = |class: &str| -> Option<u64> {
        let rest = &line[line.find(class)? + class.len()..];
        let inside = &rest[..rest.find(')')?];
        let number_after = |key: &str| -> Option<u64> {
            let r = &inside[inside.find(key)? + key.len()..];
            r.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        };
        Some(number_after("deadline misses ")? + number_after("skips ")?)
    };
    match (misses("platform "), misses("takt/task ")) {
        (Some(0), Some(0)) => RunVerdict::Kept,
        (Some(p), Some(0)) => RunVerdict::PlatformOnly(p, line.to_string()),
        _ => RunVerdict::Takt(line.to_string()),
    }
}

/// Reports a test whose real-time run only the platform spoilt: `INCONCLUSIVE <test>: ...`
/// on stderr and, when `TAKT_INCONCLUSIVE_LOG` names a file (the test command sets it), a
/// line there, so the test command counts and names it.
#[allow(dead_code)]
pub fn inconclusive(test: &str, why: &str) {
    let line = format!("INCONCLUSIVE {test}: {why}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("TAKT_INCONCLUSIVE_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

#[test]
fn run_verdicts_follow_the_attribution_line() {
    let line = |p: (u64, u64, u64), t: (u64, u64, u64)| {
        format!(
            "overruns: 0, deadline misses: 0\nattribution: platform {} (overruns {}, deadline misses {}, skips {}), takt/task {} (overruns {}, deadline misses {}, skips {}); longest time off the CPU in one job 1us\n",
            p.0 + p.1 + p.2, p.0, p.1, p.2, t.0 + t.1 + t.2, t.0, t.1, t.2
        )
    };
    assert_eq!(run_verdict(&line((0, 0, 0), (0, 0, 0))), RunVerdict::Kept);
    assert_eq!(
        run_verdict(&line((0, 0, 0), (1, 0, 0))),
        RunVerdict::Kept,
        "an overrun that missed nothing leaves outputs alone"
    );
    assert!(matches!(
        run_verdict(&line((0, 2, 1), (0, 0, 0))),
        RunVerdict::PlatformOnly(3, _)
    ));
    assert!(matches!(
        run_verdict(&line((0, 2, 0), (0, 1, 0))),
        RunVerdict::Takt(_)
    ));
    assert!(matches!(run_verdict("digest: 00\n"), RunVerdict::Takt(_)));
}

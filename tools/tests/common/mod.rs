//! What several test files of the CLI share.

use std::path::PathBuf;

/// `config/acc.toml`'s text with its apps' executables made absolute, so a copy written
/// elsewhere still names the demo's executables (relative paths resolve against the
/// manifest's own directory).
pub fn absolute_executables(text: &str) -> String {
    let release = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/");
    text.replace(
        "executable = \"../target/release/",
        &format!("executable = \"{}", release.display()),
    )
}

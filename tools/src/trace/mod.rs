//! `takt trace report | export | plot`: the latency analyst's view of a trace.
//!
//! Owns: the `takt trace` verbs over the `takt-trace` library: loading a run's files with
//! [`load`] (which prints the library's warnings on stderr and turns its errors into exit
//! code 2), and the presentation the library leaves to its callers: `report` (aligned text
//! tables, or the library's JSON report), `export` (the Perfetto JSON into a file) and `plot`
//! (SVG histograms and a Gantt timeline). Every figure comes from `takt_trace`; these
//! modules must never compute one. A damaged file gives everything before the damage plus a
//! warning naming the file, byte offset and reason; a file that cannot be read at all (bad
//! magic, unknown version, broken header) is an error with exit code 2.

mod export;
pub mod plot;
mod report;

use std::path::PathBuf;

use takt_trace::Loaded;

use crate::cli::TraceCommand;
use crate::common::Failure;

/// Reads `paths` as the files of one run, warning on stderr about every file left out or
/// damaged and about lost records, so a partial result is never mistaken for a complete one.
pub fn load(paths: &[PathBuf]) -> Result<Loaded, Failure> {
    let loaded = takt_trace::load(paths).map_err(|e| Failure::bad_input(e.to_string()))?;
    for w in loaded.warnings() {
        eprintln!("warning: {w}");
    }
    Ok(loaded)
}

/// Runs one `takt trace` subverb.
pub fn trace(command: &TraceCommand) -> Result<(), Failure> {
    match command {
        TraceCommand::Report { files, json } => report::report(files, *json),
        TraceCommand::Export { files, perfetto } => export::export(files, perfetto),
        TraceCommand::Plot { files, svg, cycle } => plot::plot(files, svg, *cycle),
    }
}

/// A name made safe for a file name: ASCII letters, digits, `-` and `_` are kept, anything
/// else becomes `_`, and an empty name becomes `_`.
pub fn file_stem(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    if s.is_empty() {
        "_".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_are_safe() {
        assert_eq!(file_stem("radar_to-brake2"), "radar_to-brake2");
        assert_eq!(file_stem("../etc/passwd"), "___etc_passwd");
        assert_eq!(file_stem(""), "_");
        assert_eq!(file_stem("ünï"), "_n_");
        assert_eq!(file_stem(&"x".repeat(500)).len(), 100);
    }
}

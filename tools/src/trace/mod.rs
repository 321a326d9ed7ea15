//! `takt trace report | export | plot`: the latency analyst's view of a trace.
//!
//! Owns: loading one run's trace files (one per process, merged with
//! `takt::trace::read_many`) and dispatching the subverbs: `report` (text tables or JSON),
//! `export` (Chrome/Perfetto trace-event JSON) and `plot` (SVG histograms and a Gantt
//! timeline). The figures themselves come from the pure [`analysis`]. It must never panic
//! on a file's content: a damaged file gives everything before the damage plus a warning
//! naming the file, byte offset and reason; a file that cannot be read at all (bad magic,
//! unknown version, broken header) is an error with exit code 2.

pub mod analysis;
mod export;
pub mod plot;
mod report;

use std::path::{Path, PathBuf};

use takt::trace::{self, TraceBreak, TraceHeader, TraceRecord};

use crate::cli::TraceCommand;
use crate::common::Failure;

/// Most bytes of trace files read at once: the records are held in memory (48 bytes each,
/// plus the rebuilt jobs), so about 45 million records, hours of a typical deployment.
pub const MAX_TRACE_BYTES: u64 = 2 << 30;

/// One file's part of a loaded run.
#[derive(Clone, Debug)]
pub struct FileInfo {
    pub path: PathBuf,
    pub app_name: String,
    pub records: usize,
    pub dropped: u64,
    pub error: Option<TraceBreak>,
}

/// Every readable record of one run's files, merged by time.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The first file's header; `read_many` made sure all files are of one deployment run.
    /// Its `mode_tasks` is the first file's that has them: a hot swap may replace a process
    /// built with an older takt, whose format-1 file lacks them, while another file of the
    /// same deployment (same manifest hash, so the same plan) carries them.
    pub header: TraceHeader,
    pub files: Vec<FileInfo>,
    pub records: Vec<TraceRecord>,
    /// Records lost in full rings, over all files.
    pub dropped_total: u64,
}

impl Loaded {
    /// The first file that broke, with where and why.
    pub fn first_break(&self) -> Option<(&Path, &TraceBreak)> {
        self.files
            .iter()
            .find_map(|f| f.error.as_ref().map(|b| (f.path.as_path(), b)))
    }

    /// Warns on stderr about every damaged file, so a partial result is never mistaken for
    /// a complete one.
    pub fn warn_about_damage(&self) {
        for f in &self.files {
            if let Some(b) = &f.error {
                eprintln!(
                    "warning: {}: only the first {} records could be read; the file breaks {b}",
                    f.path.display(),
                    f.records
                );
            }
        }
        if self.dropped_total > 0 {
            eprintln!(
                "warning: {} records were lost in full trace rings during the run; figures that depend on them are reported as unknown",
                self.dropped_total
            );
        }
    }

    /// The name the run's processes share, for titles: the app name of every file, joined.
    pub fn deployment_name(&self) -> String {
        let mut names: Vec<&str> = Vec::new();
        for f in &self.files {
            if !names.contains(&f.app_name.as_str()) {
                names.push(&f.app_name);
            }
        }
        names.join("+")
    }
}

/// Reads `paths` as the files of one run.
pub fn load(paths: &[PathBuf]) -> Result<Loaded, Failure> {
    let mut total_bytes = 0u64;
    let mut kept: Vec<PathBuf> = Vec::with_capacity(paths.len());
    for p in paths {
        let len = std::fs::metadata(p)
            .map_err(|e| Failure::bad_input(format!("{}: cannot read: {e}", p.display())))?
            .len();
        total_bytes = total_bytes.saturating_add(len);
        // A process killed before its writer's first write leaves an empty file (takt
        // writes the header at once, so only a kill between create and write does). Among
        // other files it says nothing and is left out, loudly; alone it is an error below.
        if len == 0 && paths.len() > 1 {
            eprintln!(
                "warning: {}: empty (its process ended before writing the trace header); left out",
                p.display()
            );
            continue;
        }
        kept.push(p.clone());
    }
    let paths = if kept.is_empty() { paths } else { &kept[..] };
    if total_bytes > MAX_TRACE_BYTES {
        return Err(Failure::bad_input(format!(
            "the trace files hold {total_bytes} bytes together; at most {MAX_TRACE_BYTES} are read at once (analyse fewer files, or a shorter run)"
        )));
    }
    let many = trace::read_many(paths).map_err(|e| Failure::bad_input(e.to_string()))?;
    let Some(first) = many.files.first() else {
        return Err(Failure::bad_input("no trace files given"));
    };
    let mut header = first.header.clone();
    if header.mode_tasks.is_none() {
        header.mode_tasks = many.files.iter().find_map(|f| f.header.mode_tasks.clone());
    }
    let files = many
        .files
        .iter()
        .map(|f| FileInfo {
            path: f.path.clone(),
            app_name: f.header.app_name.clone(),
            records: f.record_count,
            dropped: f.dropped_total,
            error: f.error.clone(),
        })
        .collect();
    Ok(Loaded {
        header,
        files,
        records: many.records.into_iter().map(|m| m.record).collect(),
        dropped_total: many.dropped_total,
    })
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

//! Reading the trace files of one deployment run.
//!
//! Owns: turning a list of paths (one file per process of the run) into one [`Loaded`]
//! run: the first file's header, every readable record merged by time (through
//! `takt::trace::read_many`), each file's part with where it broke, and the warnings a
//! reader of the figures must see ([`LoadWarning`]). It must never print and never panic on
//! a file's content: a damaged file gives everything before the damage plus a warning naming
//! the file, byte offset and reason; a file that cannot be read at all (bad magic, unknown
//! version, broken header, files of different runs) is a [`LoadError`].

use std::fmt;
use std::path::{Path, PathBuf};

use takt::trace::{self, ReadManyError, TraceBreak, TraceHeader, TraceRecord};

use crate::analysis::{self, Analysis};

/// Most bytes of trace files read at once: the records are held in memory (48 bytes each,
/// plus the rebuilt jobs), so about 45 million records, hours of a typical deployment.
pub const MAX_TRACE_BYTES: u64 = 2 << 30;

/// One file's part of a loaded run.
#[derive(Clone, Debug)]
pub struct FileInfo {
    pub path: PathBuf,
    pub app_name: String,
    pub records: usize,
    /// Records its rings lost (from its `Dropped` markers).
    pub dropped: u64,
    /// Where it stopped being readable; `None` for a complete file.
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
    /// Files left out because they are empty (see [`LoadWarning::EmptyFileLeftOut`]).
    pub left_out: Vec<PathBuf>,
    pub records: Vec<TraceRecord>,
    /// Records lost in full rings, over all files.
    pub dropped_total: u64,
}

/// Something a reader of the figures must know: they are partial or a file was left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadWarning {
    /// An empty file among several (its process ended before writing the trace header).
    EmptyFileLeftOut { path: PathBuf },
    /// A file breaks after `records` records: everything after the break is missing.
    Damaged {
        path: PathBuf,
        records: usize,
        at: TraceBreak,
    },
    /// Full trace rings lost records during the run.
    RecordsLost { count: u64 },
}

impl fmt::Display for LoadWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadWarning::EmptyFileLeftOut { path } => write!(
                f,
                "{}: empty (its process ended before writing the trace header); left out",
                path.display()
            ),
            LoadWarning::Damaged { path, records, at } => write!(
                f,
                "{}: only the first {records} records could be read; the file breaks {at}",
                path.display()
            ),
            LoadWarning::RecordsLost { count } => write!(
                f,
                "{count} records were lost in full trace rings during the run; figures that depend on them are reported as unknown"
            ),
        }
    }
}

/// The files cannot be read as one run; nothing of them is analysed.
#[derive(Debug)]
pub enum LoadError {
    /// No path was given.
    NoFiles,
    /// A file's size cannot be read (it does not exist, permissions).
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The files hold more than [`MAX_TRACE_BYTES`] together.
    TooLarge { total_bytes: u64 },
    /// A file is not a readable trace (bad magic, unknown version, broken header), or the
    /// files are not of one deployment run.
    Read(ReadManyError),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::NoFiles => f.write_str("no trace files given"),
            LoadError::Unreadable { path, source } => {
                write!(f, "{}: cannot read: {source}", path.display())
            }
            LoadError::TooLarge { total_bytes } => write!(
                f,
                "the trace files hold {total_bytes} bytes together; at most {MAX_TRACE_BYTES} are read at once (analyse fewer files, or a shorter run)"
            ),
            LoadError::Read(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Unreadable { source, .. } => Some(source),
            LoadError::Read(e) => Some(e),
            LoadError::NoFiles | LoadError::TooLarge { .. } => None,
        }
    }
}

impl Loaded {
    /// Runs every analysis over the run's records.
    pub fn analyze(&self) -> Analysis {
        analysis::analyze(&self.header, &self.records)
    }

    /// The first file that broke, with where and why.
    pub fn first_break(&self) -> Option<(&Path, &TraceBreak)> {
        self.files
            .iter()
            .find_map(|f| f.error.as_ref().map(|b| (f.path.as_path(), b)))
    }

    /// Everything a reader of the figures must be told, so a partial result is never
    /// mistaken for a complete one: the empty files left out, each damaged file, and the
    /// records lost in full rings, in that order.
    pub fn warnings(&self) -> Vec<LoadWarning> {
        let mut out: Vec<LoadWarning> = self
            .left_out
            .iter()
            .map(|p| LoadWarning::EmptyFileLeftOut { path: p.clone() })
            .collect();
        for f in &self.files {
            if let Some(b) = &f.error {
                out.push(LoadWarning::Damaged {
                    path: f.path.clone(),
                    records: f.records,
                    at: b.clone(),
                });
            }
        }
        if self.dropped_total > 0 {
            out.push(LoadWarning::RecordsLost {
                count: self.dropped_total,
            });
        }
        out
    }

    /// The name the run's processes share, for titles: the app name of every file, joined
    /// with `+` in file order, each once.
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

/// Reads `paths` as the files of one run (one file per process, in any order). An empty
/// file among several is left out (a process killed between creating its file and writing
/// the header leaves one); alone it is an error like any file that is not a trace.
pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<Loaded, LoadError> {
    if paths.is_empty() {
        return Err(LoadError::NoFiles);
    }
    let mut total_bytes = 0u64;
    let mut kept: Vec<PathBuf> = Vec::with_capacity(paths.len());
    let mut left_out: Vec<PathBuf> = Vec::new();
    for p in paths {
        let p = p.as_ref();
        let len = std::fs::metadata(p)
            .map_err(|source| LoadError::Unreadable {
                path: p.to_path_buf(),
                source,
            })?
            .len();
        total_bytes = total_bytes.saturating_add(len);
        // takt writes the header at once, so only a kill between create and write leaves an
        // empty file. Among other files it says nothing and is left out, loudly; alone it is
        // an error below.
        if len == 0 && paths.len() > 1 {
            left_out.push(p.to_path_buf());
            continue;
        }
        kept.push(p.to_path_buf());
    }
    if kept.is_empty() {
        kept = paths.iter().map(|p| p.as_ref().to_path_buf()).collect();
        left_out.clear();
    }
    if total_bytes > MAX_TRACE_BYTES {
        return Err(LoadError::TooLarge { total_bytes });
    }
    let many = trace::read_many(&kept).map_err(LoadError::Read)?;
    let Some(first) = many.files.first() else {
        return Err(LoadError::NoFiles);
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
        left_out,
        records: many.records.into_iter().map(|m| m.record).collect(),
        dropped_total: many.dropped_total,
    })
}

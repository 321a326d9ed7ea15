//! `takt trace export FILE... --perfetto OUT.json`: the run as Chrome trace-event JSON,
//! which ui.perfetto.dev (and chrome://tracing) opens.
//!
//! Owns: the file the export goes into (created, written through a buffer, synced) and the
//! line that says so. The events themselves are `takt_trace::perfetto`'s; this must never
//! write an event of its own.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::load;
use crate::common::Failure;

pub fn export(paths: &[PathBuf], out: &Path) -> Result<(), Failure> {
    let loaded = load(paths)?;
    let a = loaded.analyze();
    let write_err =
        |e: std::io::Error| Failure::run_failed(format!("{}: cannot write: {e}", out.display()));
    let file = File::create(out).map_err(write_err)?;
    let mut w = BufWriter::new(file);
    let count = takt_trace::perfetto::write_events(&loaded, &a, &mut w).map_err(write_err)?;
    w.flush().map_err(write_err)?;
    w.into_inner()
        .map_err(|e| write_err(e.into_error()))?
        .sync_all()
        .map_err(write_err)?;
    eprintln!(
        "wrote {} trace events to {} (open it in ui.perfetto.dev)",
        count,
        out.display()
    );
    Ok(())
}

//! takt-trace: the latency analyst's library for takt trace files.
//!
//! Owns: reading the trace files of one deployment run (one per process, merged by time;
//! [`load()`]), the analyses over their records ([`analysis`]: jobs, per-task lateness and
//! execution, chains, mode switches, release accounting), the report they make together
//! ([`report::Report`], the JSON `takt trace report --json` prints) and the Chrome/Perfetto
//! trace-event export ([`perfetto`]). It must never print, parse a command line or exit:
//! figures and warnings are returned as values and errors as typed enums, so latency tools
//! other than the `takt` CLI can depend on it. Text tables and SVG plots are the CLI's
//! (`tools/src/trace/`): they are layout, not figures.
//!
//! A damaged file never makes it panic: everything before the damage is read and the break
//! is reported with the file, byte offset and reason ([`Loaded::warnings`], the report's
//! `break`); only files that cannot be read at all are a [`LoadError`].
//!
//! ```no_run
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let files: Vec<String> = std::env::args().skip(1).collect();
//!     let run = takt_trace::load(&files)?; // e.g. t.takt.sensing t.takt.planning t.takt.vehicle
//!     for w in run.warnings() {
//!         eprintln!("warning: {w}"); // a damaged file, records lost in a full ring
//!     }
//!     let report = takt_trace::Report::new(&run, &run.analyze());
//!     for c in &report.chains {
//!         let (age, bound) = (c.measured.data_age_ns_max, c.bound.bound_data_age_ns);
//!         println!("{}: data age max {age:?} ns, bound {bound:?} ns", c.name);
//!     }
//!     Ok(())
//! }
//! ```
//!
//! (The README's example; `examples/latency_check.rs` is a complete tool.)
#![deny(unsafe_code)]

pub mod analysis;
pub mod load;
pub mod perfetto;
pub mod report;

pub use analysis::{analyze, Analysis};
pub use load::{load, FileInfo, LoadError, LoadWarning, Loaded, MAX_TRACE_BYTES};
pub use report::{Report, FORMAT_VERSION};

/// Reads `paths` as the files of one run and computes its report: [`load()`], then
/// [`Loaded::analyze`], then [`Report::new`]. Damage and ring losses show in the report
/// (`break`, `dropped_events`); an empty file left out of several shows only in
/// [`Loaded::warnings`], so a tool that wants those calls the three steps itself.
pub fn report<P: AsRef<std::path::Path>>(paths: &[P]) -> Result<Report, LoadError> {
    let run = load(paths)?;
    let analysis = run.analyze();
    Ok(Report::new(&run, &analysis))
}

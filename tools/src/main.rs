//! `takt`: the command-line tool, a thin `main` over the `takt_cli` library (src/lib.rs):
//! parse the arguments, run the verb, print its failure and exit with its code.
#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

// --- takt bench ---
// `takt bench` counts heap allocations per dispatched job, in a test build only: the counting
// allocator is a test hook (`takt`'s `test-hooks` feature, on for `cargo test`), so a shipped
// binary runs every verb on the system allocator (issue #12.11).
takt::counting_allocator!();
// --- end takt bench ---

fn main() -> ExitCode {
    // The library reports through `log`; the CLI is the program, so it picks the sink first.
    takt::logging::to_stderr();
    match takt_cli::run(takt_cli::cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", e.message);
            ExitCode::from(e.code)
        }
    }
}

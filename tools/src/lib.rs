//! The `takt` command-line tool as a library: `main.rs` parses the arguments into a
//! [`cli::Cli`], calls [`run`] and maps its [`Failure`] to the exit code.
//!
//! Owns: the dispatch of each verb to its module. `cli.rs` holds the argument shape, one
//! file per verb beside it, `common.rs` what they share. The trace analysis is the
//! `takt-trace` crate (tools/trace), which latency tools use without this one. It must
//! never print a verb's failure or exit (that is `main`'s): every verb returns a
//! [`Failure`] with its message and exit code.
#![deny(unsafe_code)]

// --- takt bench ---
mod bench;
// --- end takt bench ---
mod check;
pub mod cli;
pub mod common;
mod new;
mod plan;
// --- takt plan --svg / takt trace ---
mod plan_svg;
mod trace;
// --- end takt plan --svg / takt trace ---
mod run;
// --- takt lifecycle ---
mod mode;
mod status;
mod stop;
// --- end takt lifecycle ---
// --- takt ota ---
mod ota;
mod ota_live;
mod ota_strip;
// --- end takt ota ---

pub use common::{Failure, EXIT_BAD_INPUT, EXIT_RUN_FAILED};

/// Runs the verb `cli` names. `Err` carries what to print and the exit code.
pub fn run(cli: cli::Cli) -> Result<(), Failure> {
    match cli.command {
        cli::Command::New { name, dir, takt } => new::new(&name, &dir, takt.as_deref()),
        cli::Command::Check { manifest } => check::check(&manifest),
        cli::Command::Plan {
            manifest,
            svg,
            mode,
        } => plan::plan(&manifest, svg.as_deref(), mode.as_deref()),
        cli::Command::Run {
            manifest,
            duration,
            clock,
            allow_non_rt,
            inject_jitter,
            quiet: _,
            trace,
            // --- takt lifecycle ---
            single_process,
            multi_process: _,
            control,
            ota_dir,
            // --- end takt lifecycle ---
        } => run::run(&run::RunArgs {
            manifest,
            duration,
            clock,
            allow_non_rt,
            inject_jitter,
            trace,
            // --- takt lifecycle ---
            single_process,
            control,
            ota_dir,
            // --- end takt lifecycle ---
        }),
        // --- takt lifecycle ---
        cli::Command::Status { json, control } => status::status(json, control.as_deref()),
        cli::Command::Mode {
            command: cli::ModeCommand::Set { name },
            control,
        } => mode::set(&name, control.as_deref()),
        cli::Command::Stop { control } => stop::stop(control.as_deref()),
        // --- end takt lifecycle ---
        // --- takt bench ---
        cli::Command::Bench {
            quick,
            json,
            acc_manifest,
            cyclictest,
        } => bench::bench(&bench::BenchArgs {
            quick,
            json,
            acc_manifest,
            cyclictest,
        }),
        // --- end takt bench ---
        // --- takt trace ---
        cli::Command::Trace { command } => trace::trace(&command),
        // --- end takt trace ---
        // --- takt ota ---
        cli::Command::Ota { command } => ota::ota(&command),
        // --- end takt ota ---
    }
}

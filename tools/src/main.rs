//! `takt`: the command-line tool. `cli.rs` holds the argument shape, one file per verb.
#![deny(unsafe_code)]

// --- takt bench ---
mod bench;
// --- end takt bench ---
mod check;
mod cli;
mod common;
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
mod supervise;
// --- end takt lifecycle ---
// --- takt ota ---
mod ota;
mod ota_live;
// --- end takt ota ---

use std::process::ExitCode;

use clap::Parser;

// --- takt bench ---
// `takt bench` counts heap allocations per dispatched job, in a test build only: the counting
// allocator is a test hook (`takt`'s `test-hooks` feature, on for `cargo test`), so a shipped
// binary runs every verb on the system allocator (issue #12.11).
takt::counting_allocator!();
// --- end takt bench ---

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", e.message);
            ExitCode::from(e.code)
        }
    }
}

//! `takt`: the command-line tool. `cli.rs` holds the argument shape, one file per verb.
#![deny(unsafe_code)]

// --- takt bench ---
mod bench;
// --- end takt bench ---
mod check;
mod cli;
mod common;
mod plan;
// --- takt plan --svg / takt trace ---
mod plan_svg;
mod trace;
// --- end takt plan --svg / takt trace ---
mod run;

use std::process::ExitCode;

use clap::Parser;

// --- takt bench ---
// `takt bench` counts heap allocations per dispatched job; counting costs two relaxed atomic
// adds per allocation, negligible for every other verb (see bench/alloc.rs).
#[global_allocator]
static GLOBAL: bench::alloc::Counting = bench::alloc::Counting;
// --- end takt bench ---

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
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
            quiet,
            trace,
        } => run::run(&run::RunArgs {
            manifest,
            duration,
            clock,
            allow_non_rt,
            inject_jitter,
            quiet,
            trace,
        }),
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", e.message);
            ExitCode::from(e.code)
        }
    }
}

//! `takt`: the command-line tool. `cli.rs` holds the argument shape, one file per verb.
#![deny(unsafe_code)]

mod check;
mod cli;
mod common;
mod plan;
mod run;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Check { manifest } => check::check(&manifest),
        cli::Command::Plan { manifest } => plan::plan(&manifest),
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", e.message);
            ExitCode::from(e.code)
        }
    }
}

//! The entry point of one app process under a supervisor: `takt app-host` and every app
//! executable (the ones an OTA bundle carries) start here.
//!
//! Owns: the app process's command line (the supervisor writes it, see
//! [`Supervisor::spawn`](super::supervisor)), loading the manifest against the process's own
//! registry, planning, and handing over to [`host_app`](super::host_app). It must never
//! decide anything the supervisor decides (epoch, mode, restarts, which version owns an app).
//!
//! An app executable is a `main` that builds its [`Registry`] and calls [`app_main`]:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     takt::lifecycle::app_main(takt::task::Registry::new())
//! }
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use super::host::{host_app, HostOptions};
use crate::catalog::{self, AppCatalog, DeploymentCatalogs};
use crate::dispatch::{ClockKind, Jitter, RunOptions, TraceOptions};
use crate::manifest;
use crate::plan;
use crate::task::Registry;

/// The command line the supervisor gives every app process.
#[derive(Parser, Debug, Clone)]
#[command(about = "One app of a takt deployment, started by `takt run` (not by hand)")]
pub struct AppArgs {
    #[arg(long)]
    pub manifest: PathBuf,
    /// Every app's catalog as the supervisor validated the deployment with
    /// ([`DeploymentCatalogs`]).
    #[arg(long)]
    pub catalogs: PathBuf,
    #[arg(long)]
    pub app: String,
    /// The supervisor's control socket.
    #[arg(long)]
    pub control: PathBuf,
    /// Name of the shared control block (under /dev/shm).
    #[arg(long)]
    pub shm: String,
    /// 0 for the first process of the app, +1 for every later one (restart or new version).
    #[arg(long, default_value_t = 0)]
    pub incarnation: u32,
    /// Start without owning the app: build every task, open every port, follow the schedule
    /// without running a job, until a handover names this incarnation (OTA hot swap).
    #[arg(long)]
    pub standby: bool,
    /// The OTA version counter of the code this process runs (0: the manifest's own).
    #[arg(long, default_value_t = 0)]
    pub version: u64,
    #[arg(long)]
    pub namespace: String,
    /// Run in simulated time, in lockstep with the deployment's other app processes.
    #[arg(long)]
    pub sim: bool,
    #[arg(long)]
    pub duration_ns: u64,
    #[arg(long)]
    pub allow_non_rt: bool,
    #[arg(long)]
    pub inject_jitter: Option<u64>,
    /// Trace file prefix: this app writes `<FILE>.<app>` (`.<app>.<n>` for incarnation n).
    #[arg(long)]
    pub trace: Option<PathBuf>,
}

/// Parses the process's command line and hosts the app with `registry`'s tasks until the run
/// ends. Exit code 0 when the app ran and reported, 2 for a bad command line or manifest,
/// 1 when the run failed.
pub fn app_main(registry: Registry) -> ExitCode {
    // The catalog handshake comes first and alone: `takt` asks before it validates a
    // deployment, so the answer must not depend on anything else on the command line.
    let mut argv = std::env::args_os().skip(1);
    if argv.next().is_some_and(|a| a == catalog::CATALOG_FLAG) && argv.next().is_none() {
        use std::io::Write;
        let frame = AppCatalog::of(&registry).encode();
        let mut out = std::io::stdout().lock();
        return match out.write_all(&frame).and_then(|()| out.flush()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(1),
        };
    }
    let args = match AppArgs::try_parse() {
        Ok(a) => a,
        Err(e) => {
            // --help and --version are answers, not errors.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match host_with_args(&args, &registry) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("{message}");
            ExitCode::from(code)
        }
    }
}

/// What [`app_main`] does after parsing: `Err((exit code, message))` on failure.
pub fn host_with_args(args: &AppArgs, registry: &Registry) -> Result<(), (u8, String)> {
    // SIGINT (a terminal's Ctrl-C reaches the whole process group) and SIGTERM (systemd
    // signals the whole cgroup) are the supervisor's to act on: it stops every app at one
    // boundary. Swallowing them here keeps an app from dying alone.
    let ignored = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, std::sync::Arc::clone(&ignored));
    }
    let who = format!("app `{}` (incarnation {})", args.app, args.incarnation);
    let validated =
        DeploymentCatalogs::read(&args.catalogs).map_err(|e| (2, format!("{who}: {e}")))?;
    catalog::check_own_part(&validated, &args.app, &AppCatalog::of(registry))
        .map_err(|e| (2, format!("{who}: {}: {e}", executable_name())))?;
    let union = validated.union().map_err(|conflicts| {
        let lines: Vec<String> = conflicts.iter().map(|c| format!("  {c}")).collect();
        (
            2,
            format!(
                "{who}: the validated catalogs conflict:\n{}",
                lines.join("\n")
            ),
        )
    })?;
    let d = manifest::load(&args.manifest, &union, manifest::available_cores())
        .map_err(|e| (2, format!("{who}: {e}")))?;
    let p = plan::synthesize(&d).map_err(|e| {
        (
            2,
            format!("{who}: {}: the task set is not schedulable:\n{e}", d.source),
        )
    })?;
    plan::verify(&d, &p).map_err(|v| {
        let lines: Vec<String> = v.iter().map(|v| format!("  {}", v.message)).collect();
        (
            1,
            format!(
                "{who}: internal error: the plan failed independent verification:\n{}",
                lines.join("\n")
            ),
        )
    })?;
    let trace = match &args.trace {
        Some(prefix) => {
            let hash = manifest::hash_file(&args.manifest).map_err(|e| {
                (
                    2,
                    format!("{who}: {}: cannot read: {e}", args.manifest.display()),
                )
            })?;
            let mut name = prefix.clone().into_os_string();
            name.push(format!(".{}", args.app));
            if args.incarnation > 0 {
                name.push(format!(".{}", args.incarnation));
            }
            let mut t = TraceOptions::new(PathBuf::from(name), hash);
            t.app_name = args.app.clone();
            Some(t)
        }
        None => None,
    };
    let opts = HostOptions {
        app: args.app.clone(),
        control_path: args.control.clone(),
        shm_name: args.shm.clone(),
        incarnation: args.incarnation,
        standby: args.standby,
        version: args.version,
        run: RunOptions {
            clock: if args.sim {
                ClockKind::Sim
            } else {
                ClockKind::Real
            },
            duration_ns: args.duration_ns,
            allow_non_rt: args.allow_non_rt,
            jitter: args.inject_jitter.map(|seed| Jitter {
                seed,
                max_fraction_of_budget: 0.5,
            }),
            namespace: Some(args.namespace.clone()),
            trace,
            ..RunOptions::default()
        },
    };
    host_app(&d, &p, registry, &opts)
        .map(|_| ())
        .map_err(|e| (1, format!("takt app-host {who}: {e}")))
}

/// This process's executable, for messages.
fn executable_name() -> String {
    std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "this executable".into())
}

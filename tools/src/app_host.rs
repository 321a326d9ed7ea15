//! `takt app-host`: one app's process under a supervised `takt run` (hidden; the
//! supervisor starts it). Loads the same manifest, computes the same plan, hosts the app's
//! tasks and reports back through `takt::lifecycle::host_app`.

use std::path::PathBuf;

use clap::Args;
use takt::dispatch::{ClockKind, Jitter, RunOptions, TraceOptions};
use takt::lifecycle::{self, HostOptions};

use crate::common::{self, Failure};

#[derive(Args, Debug)]
pub struct AppHostArgs {
    #[arg(long)]
    pub manifest: PathBuf,
    #[arg(long)]
    pub app: String,
    #[arg(long)]
    pub control: PathBuf,
    /// Name of the shared control block (under /dev/shm).
    #[arg(long)]
    pub shm: String,
    /// 0 for the first process of the app, +1 per restart.
    #[arg(long, default_value_t = 0)]
    pub incarnation: u32,
    #[arg(long)]
    pub namespace: String,
    #[arg(long)]
    pub duration_ns: u64,
    #[arg(long)]
    pub allow_non_rt: bool,
    #[arg(long)]
    pub inject_jitter: Option<u64>,
    /// Trace file prefix: this app writes `<FILE>.<app>` (`.<app>.<n>` after restart n).
    #[arg(long)]
    pub trace: Option<PathBuf>,
}

pub fn app_host(args: &AppHostArgs) -> Result<(), Failure> {
    // SIGINT (a terminal's Ctrl-C reaches the whole process group) and SIGTERM (systemd
    // signals the whole cgroup) are the supervisor's to act on: it stops every app at one
    // boundary. Swallowing them here keeps an app from dying alone.
    let ignored = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, std::sync::Arc::clone(&ignored));
    }
    let registry = common::registry();
    let d = common::load(&args.manifest, &registry)?;
    let plan = common::plan_verified(&d)?;
    let trace = match &args.trace {
        Some(prefix) => {
            let hash = takt::manifest::hash_file(&args.manifest).map_err(|e| {
                Failure::bad_input(format!("{}: cannot read: {e}", args.manifest.display()))
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
        run: RunOptions {
            clock: ClockKind::Real,
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
    lifecycle::host_app(&d, &plan, &registry, &opts)
        .map(|_| ())
        .map_err(|e| Failure::run_failed(format!("takt app-host `{}`: {e}", args.app)))
}

//! The app side of a supervised run: one process hosting one app's tasks.
//!
//! Owns: joining the supervisor (ready → join point over the control socket, health and the
//! mode word in the shared control block) and handing back the app's results. It must never
//! decide a mode, an epoch or a restart: those belong to the supervisor.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use crate::dispatch::lockstep::Lockstep;
use crate::dispatch::{
    self, AppRole, ClockKind, Hooks, JoinAt, RunOptions, RunReport, WalkBarrier,
};
use crate::manifest::{Deployment, TaskId};
use crate::plan::Plan;
use crate::task::Registry;
use crate::time::MonoNs;

use super::shm::SharedControl;
use super::wire::{self, AppRun, Request, Response, WireTaskStats};

/// How long an app process waits for the supervisor to acknowledge its results.
const FINISH_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// What an app process needs to know besides the manifest.
#[derive(Clone, Debug)]
pub struct HostOptions {
    pub app: String,
    pub control_path: PathBuf,
    pub shm_name: String,
    /// Which process of the app this is (0 first, +1 per restart or new version).
    pub incarnation: u32,
    /// Start standing by for a handover (OTA hot swap) instead of running the app.
    pub standby: bool,
    /// The OTA version counter of the code this process runs (0: the manifest's own).
    pub version: u64,
    /// Namespace, duration, jitter, trace, priority: the same for every app of the run
    /// (`tasks` and `start_cycle` are set here).
    pub run: RunOptions,
}

/// The tasks of app `app` (by index), in manifest order.
pub fn tasks_of(d: &Deployment, app: usize) -> Vec<TaskId> {
    (0..d.tasks.len())
        .filter(|&t| d.tasks[t].app == app)
        .collect()
}

/// How many dispatchers all apps of the run start together (one per app and core used).
pub fn total_dispatchers(d: &Deployment, plan: &Plan) -> usize {
    (0..d.apps.len())
        .map(|a| dispatch::hosted_cores(plan, Some(&tasks_of(d, a))).len())
        .sum()
}

/// Hosts app `opts.app` until the run ends, then reports to the supervisor. Returns the
/// results it sent, or why the app could not run (also sent, where the socket allows).
pub fn host_app(
    d: &Deployment,
    plan: &Plan,
    registry: &Registry,
    opts: &HostOptions,
) -> Result<AppRun, String> {
    let app = d
        .apps
        .iter()
        .position(|a| a.name == opts.app)
        .ok_or_else(|| {
            let names: Vec<&str> = d.apps.iter().map(|a| a.name.as_str()).collect();
            format!(
                "{}: no [[app]] named `{}`; the manifest declares {names:?}",
                d.source, opts.app
            )
        })?;
    if app >= super::shm::MAX_APPS {
        return Err(format!(
            "app `{}` is app #{app}; the lifecycle manager supervises at most {} apps",
            opts.app,
            super::shm::MAX_APPS
        ));
    }
    let shared = SharedControl::open(&opts.shm_name).map_err(|e| e.to_string())?;
    let stream = UnixStream::connect(&opts.control_path).map_err(|e| {
        format!(
            "cannot connect to the supervisor's control socket {}: {e}",
            opts.control_path.display()
        )
    })?;
    let stream = Mutex::new(stream);
    let block = shared.block();
    let mut run = opts.run.clone();
    run.tasks = Some(tasks_of(d, app));
    let app_name = opts.app.clone();
    let join = |timeout: Duration| -> Result<JoinAt, String> {
        let mut s = stream
            .lock()
            .map_err(|_| "the control connection's lock is poisoned".to_string())?;
        wire::send(
            &mut *s,
            &Request::AppReady {
                app: app_name.clone(),
                pid: std::process::id(),
                version: format!(
                    "{} (takt {}, incarnation {}{})",
                    opts.version,
                    env!("CARGO_PKG_VERSION"),
                    opts.incarnation,
                    if opts.standby { ", standby" } else { "" }
                ),
            },
        )
        .map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .map_err(|e| e.to_string())?;
        match wire::receive::<Response, _>(&mut *s) {
            Ok(Response::Join {
                epoch_ns,
                start_cycle,
            }) => Ok(JoinAt {
                epoch: MonoNs(epoch_ns),
                start_cycle,
            }),
            Ok(Response::Refused(why)) => Err(format!("the supervisor refused: {why}")),
            Ok(other) => Err(format!("unexpected answer from the supervisor: {other:?}")),
            Err(e) => Err(format!("no join point from the supervisor: {e}")),
        }
    };
    let hooks = Hooks {
        join: Some(&join),
        health: Some(&block.apps[app]),
        barrier: Some(WalkBarrier {
            walked: &block.walked,
            // Simulated time runs all of a process's cores on one dispatcher.
            dispatchers: match run.clock {
                ClockKind::Real => total_dispatchers(d, plan),
                ClockKind::Sim => (0..d.apps.len())
                    .filter(|&a| !tasks_of(d, a).is_empty())
                    .count(),
            },
        }),
        lockstep: (run.clock == ClockKind::Sim).then_some(Lockstep {
            progress: &block.sim_progress,
            me: app,
            bell: &block.sim_bell,
        }),
        role: Some(AppRole {
            app,
            incarnation: opts.incarnation,
            standby: opts.standby,
        }),
    };
    let outcome = dispatch::run_hosted(d, plan, registry, &run, &block.run, hooks);
    let result = outcome.map(|r| app_run(&r)).map_err(|e| e.to_string());
    let mut s = stream
        .into_inner()
        .map_err(|_| "the control connection's lock is poisoned".to_string())?;
    let sent = wire::send(
        &mut s,
        &Request::AppFinished {
            app: opts.app.clone(),
            result: result.clone(),
        },
    );
    if sent.is_ok() {
        // Wait for the acknowledgement so the supervisor has the results before it sees
        // this process exit.
        let _ = s.set_read_timeout(Some(FINISH_ACK_TIMEOUT));
        let _ = wire::receive::<Response, _>(&mut s);
    }
    result
}

fn app_run(r: &RunReport) -> AppRun {
    AppRun {
        realtime: r.realtime,
        cycles: r.cycles,
        wall_ns: r.wall_ns,
        tasks: r.tasks.iter().map(WireTaskStats::from).collect(),
        reports: r
            .reports
            .iter()
            .map(|(n, rep)| (n.clone(), rep.outcome.clone(), rep.digest))
            .collect(),
        warnings: r.warnings.clone(),
        trace: r.trace.as_ref().map(|t| {
            format!(
                "{} records ({} lost in full rings) written to {}",
                t.records,
                t.dropped,
                t.path.display()
            )
        }),
    }
}

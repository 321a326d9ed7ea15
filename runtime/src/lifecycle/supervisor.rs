//! The supervisor: one process per app, one epoch, health supervision, restarts, the
//! control socket; all on one mio event loop.
//!
//! Owns: the app processes of one run and everything decided about them. It must never run
//! a task, and never wait by spinning: it sleeps in `Poll::poll` until a child exits
//! (SIGCHLD through signal-hook-mio), a control connection has data, or its next timer is
//! due (startup deadline, heartbeat check, systemd watchdog, end of run).

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGCHLD, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::dispatch::{ClockKind, RunControl, RunReport, STOP};
use crate::manifest::{Deployment, Supervision};
use crate::plan::Plan;
use crate::sync::Ordering;
use crate::time::{format_ns, monotonic_now_ns};

use super::host::tasks_of;
use super::host_plan::{HostPlan, HostPlanFile, HostRun};
use super::notify::Notifier;
use super::policy::RestartHistory;
use super::shm::{SharedControl, MAX_APPS};
use super::wire::{self, AppRun, AppState, AppStatus, Request, Response};
use crate::process::kill_hard;

mod connections;
mod processes;
mod report;
mod requests;
mod restarts;
mod staged_file;
mod update;

use connections::{bind_control, Conn, CLIENT_REQUEST_TIMEOUT_NS};
use processes::Children;
pub use update::{offline_report, KILL_POINTS};

const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
const FIRST_CONNECTION: usize = 2;
/// The longest the loop sleeps while apps run: heartbeats are checked this often.
const TICK: Duration = Duration::from_millis(100);

/// How to start an app process.
#[derive(Clone, Debug)]
pub struct HostCommand {
    /// The program hosting apps without an `executable` (the `takt` binary itself).
    pub program: PathBuf,
    /// Arguments only the default program gets, first (e.g. `app-host`).
    pub subcommand: Vec<OsString>,
    /// What every app process of the run shares (catalogs, namespace, duration...). The
    /// supervisor writes it with the deployment, the plan, the control socket and the
    /// control block into the run's host plan ([`HostPlan`]) and starts each process with
    /// `--takt-host FILE --app NAME --incarnation N --version V [--standby]`.
    pub run: HostRun,
}

/// How to supervise.
#[derive(Clone, Debug)]
pub struct SuperviseOptions {
    pub control_path: PathBuf,
    pub duration_ns: u64,
    /// How long all apps may take to report ready; the error names the late ones.
    pub startup_timeout_ns: u64,
    /// Time between the last app becoming ready (or a restarted one) and its first cycle.
    pub epoch_margin_ns: u64,
    pub host: HostCommand,
    /// Over-the-air updates: `None` leaves them off (requests are refused).
    pub ota: Option<OtaOptions>,
    /// Real time, or simulated time shared by the app processes in lockstep (heartbeats
    /// then measure nothing against the wall clock and are not supervised).
    pub clock: ClockKind,
}

/// How the supervisor takes updates.
#[derive(Clone, Debug)]
pub struct OtaOptions {
    /// Where every app's slots and journal live (`<dir>/<app>/...`).
    pub state_dir: PathBuf,
    /// Keys whose bundles may be staged (the manifest's `[ota] trusted_keys`).
    pub trusted: crate::ota::bundle::TrustedKeys,
    /// The message layouts the running apps were built with (port fingerprints).
    pub catalog: crate::manifest::Catalog,
    /// Their structure, so a refused bundle names the field that differs.
    pub layouts: crate::ota::bundle::Layouts,
    /// Hyperperiods a new version stands by beside the old one before the switch.
    pub warm_up_cycles: u64,
}

/// What a supervised run did.
pub struct SuperviseOutcome {
    /// The combined report of all apps: the same summary and digest as one process.
    pub report: RunReport,
    /// Every app's final status (restarts, state).
    pub apps: Vec<AppStatus>,
    /// Per app: the trace file it wrote.
    pub traces: Vec<(String, String)>,
    /// Why the run failed (an app failed for good with escalation `stop`, or an app's
    /// dispatch failed); `None` when it succeeded.
    pub failure: Option<String>,
}

/// The default control socket: `/run/takt.sock` for root, `/tmp/takt-<uid>.sock` otherwise.
pub fn default_control_path() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        PathBuf::from("/run/takt.sock")
    } else {
        PathBuf::from(format!("/tmp/takt-{uid}.sock"))
    }
}

/// Sends one request to a supervisor and returns its answer (`takt status|mode|stop`).
pub fn request(path: &Path, req: &Request, timeout: Duration) -> Result<Response, String> {
    let mut s = std::os::unix::net::UnixStream::connect(path).map_err(|e| {
        format!(
            "cannot reach a supervisor at {}: {e} (is `takt run` running? pass its --control path)",
            path.display()
        )
    })?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    wire::send(&mut s, req).map_err(|e| e.to_string())?;
    wire::receive(&mut s).map_err(|e| e.to_string())
}

struct App {
    name: String,
    supervision: Supervision,
    /// False for an app without tasks: nothing to host, never started.
    hosted: bool,
    child: Option<Child>,
    pid: Option<u32>,
    state: AppState,
    history: RestartHistory,
    /// Which process of this app is current (0 first, +1 per restart).
    incarnation: u32,
    /// The control connection of the current process.
    conn: Option<Token>,
    /// Ready and waiting for the epoch (startup only).
    waiting: bool,
    version: String,
    last_beat: u64,
    /// When the heartbeat last moved (monotonic ns), or when it is first due.
    last_beat_ns: u64,
    joined: bool,
    result: Option<Result<AppRun, String>>,
    /// The executable the current process runs (`None`: the manifest's).
    exe: Option<PathBuf>,
    /// The OTA version counter it runs (0: the manifest's own code).
    ota_version: u64,
    /// The incarnation number the next process of this app gets.
    next_incarnation: u32,
}

struct Supervisor<'a> {
    d: &'a Deployment,
    plan: &'a Plan,
    opts: &'a SuperviseOptions,
    shared: SharedControl,
    /// The run's host plan file (owned by `supervise`, which outlives this).
    host_plan: PathBuf,
    cycles: u64,
    started_ns: u64,
    epoch_ns: Option<u64>,
    stopping: bool,
    stop_at_ns: Option<u64>,
    failure: Option<String>,
    conns: HashMap<Token, Conn>,
    next_token: usize,
    notifier: Option<Notifier>,
    next_watchdog_ns: u64,
    requested_mode: Option<usize>,
    /// Updates, when enabled.
    updates: Option<update::Updates>,
    /// The supervisor's effective uid: its owner.
    owner_uid: u32,
}

/// Runs the deployment as one process per app until its duration ends or a stop, and
/// returns what every app did. `Err` when the run could not start at all.
pub fn supervise(
    d: &Deployment,
    plan: &Plan,
    opts: &SuperviseOptions,
) -> Result<SuperviseOutcome, String> {
    if d.apps.len() > MAX_APPS {
        return Err(format!(
            "{}: {} apps are declared; the lifecycle manager supervises at most {MAX_APPS}",
            d.source,
            d.apps.len()
        ));
    }
    if plan.hyperperiod_ns == 0 {
        return Err("the plan's hyperperiod is zero".into());
    }
    let stale = SharedControl::remove_stale();
    if stale > 0 {
        log::info!("takt run: removed {stale} control block(s) of supervisors that no longer run");
    }
    let shm_name = SharedControl::name_for(&d.name, std::process::id());
    let shared = SharedControl::create(&shm_name, d.default_mode).map_err(|e| e.to_string())?;
    if opts.clock == ClockKind::Sim {
        // Every app that hosts a task takes part in simulated time from logical 0; the
        // others (and ended processes, see `reap`) hold nobody back.
        for (i, p) in shared.block().sim_progress.iter().enumerate() {
            if i < d.apps.len() && !tasks_of(d, i).is_empty() {
                p.store(0, Ordering::Release);
            }
        }
    }
    // Written once, before any app process starts; every process of the run (restarts and
    // OTA standbys too) reads the same bytes, and it goes when the supervisor returns.
    let host_plan = HostPlanFile::write(&HostPlan {
        api_version: crate::catalog::API_VERSION,
        takt_version: env!("CARGO_PKG_VERSION").to_string(),
        deployment: d.clone(),
        plan: plan.clone(),
        control_path: opts.control_path.clone(),
        shm_name: shm_name.clone(),
        run: opts.host.run.clone(),
    })?;
    let (listener, _socket_file) = bind_control(&opts.control_path)?;
    let mut poll = Poll::new().map_err(|e| format!("cannot create the event loop: {e}"))?;
    let mut listener = listener;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .map_err(|e| format!("cannot watch the control socket: {e}"))?;
    let mut signals = Signals::new([SIGCHLD, SIGTERM, SIGINT])
        .map_err(|e| format!("cannot install the signal handlers: {e}"))?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)
        .map_err(|e| format!("cannot watch signals: {e}"))?;

    let mut apps: Vec<App> = d
        .apps
        .iter()
        .enumerate()
        .map(|(i, a)| App {
            name: a.name.clone(),
            supervision: a.supervision,
            hosted: !tasks_of(d, i).is_empty(),
            child: None,
            pid: None,
            state: AppState::Starting,
            history: RestartHistory::default(),
            incarnation: 0,
            conn: None,
            waiting: false,
            version: String::new(),
            last_beat: 0,
            last_beat_ns: 0,
            joined: false,
            result: None,
            exe: a
                .executable
                .as_ref()
                .map(|e| crate::manifest::resolve_executable(&d.source, e)),
            ota_version: 0,
            next_incarnation: 1,
        })
        .collect();
    let now = monotonic_now_ns();
    let mut sup = Supervisor {
        d,
        plan,
        opts,
        shared,
        host_plan: host_plan.path().to_path_buf(),
        cycles: opts.duration_ns.div_ceil(plan.hyperperiod_ns).max(1),
        started_ns: now,
        epoch_ns: None,
        stopping: false,
        stop_at_ns: None,
        failure: None,
        conns: HashMap::new(),
        next_token: FIRST_CONNECTION,
        notifier: Notifier::from_env(),
        next_watchdog_ns: now,
        requested_mode: None,
        updates: None,
        // SAFETY: geteuid has no preconditions and cannot fail.
        owner_uid: unsafe { libc::geteuid() },
    };
    if let Some(o) = &opts.ota {
        sup.updates = Some(update::Updates::open(d, o, &mut apps)?);
    }
    let children = Children(&mut apps);
    let apps = &mut *children.0;
    for (i, app) in apps.iter_mut().enumerate() {
        if !app.hosted {
            app.state = AppState::Stopped;
            continue;
        }
        sup.spawn(app, i)?;
    }
    let mut events = Events::with_capacity(64);
    loop {
        if sup.finished(apps) {
            break;
        }
        let timeout = sup.next_timeout(apps);
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() != ErrorKind::Interrupted {
                return Err(format!("the event loop failed: {e}"));
            }
        }
        for ev in events.iter() {
            match ev.token() {
                LISTENER => sup.accept(apps, &poll, &mut listener),
                SIGNALS => {
                    for sig in signals.pending() {
                        if sig == SIGTERM || sig == SIGINT {
                            sup.stop(apps, "a stop signal");
                        }
                    }
                }
                t => sup.service(apps, t),
            }
        }
        sup.reap(apps);
        sup.timers(apps)?;
    }
    if let Some(n) = &sup.notifier {
        n.send("STOPPING=1");
    }
    Ok(sup.outcome(apps))
}

impl Supervisor<'_> {
    fn control(&self) -> &RunControl {
        &self.shared.block().run
    }

    /// The run's planned end (monotonic ns), once the epoch is known.
    fn end_ns(&self) -> Option<u64> {
        self.epoch_ns
            .map(|e| e + self.cycles.saturating_mul(self.plan.hyperperiod_ns))
    }

    /// Whether no app process is left and none will be started again.
    fn finished(&self, apps: &[App]) -> bool {
        apps.iter().all(|a| a.child.is_none()) && self.spares_gone()
    }

    fn next_timeout(&self, apps: &[App]) -> Duration {
        let now = monotonic_now_ns();
        let mut due = now + TICK.as_nanos() as u64;
        if self.epoch_ns.is_none() {
            due = due.min(self.started_ns + self.opts.startup_timeout_ns);
        }
        if self.notifier.is_some() {
            due = due.min(self.next_watchdog_ns);
        }
        let _ = apps;
        Duration::from_nanos(due.saturating_sub(now))
    }

    fn grace_ns(&self) -> u64 {
        self.plan.hyperperiod_ns.saturating_mul(2) + self.opts.startup_timeout_ns + 10_000_000_000
    }

    fn stop(&mut self, apps: &mut [App], why: &str) {
        if self.stopping {
            return;
        }
        log::info!("takt run: stopping every app at the next hyperperiod boundary ({why})");
        self.stopping = true;
        self.stop_at_ns = Some(monotonic_now_ns());
        self.control().request_stop();
        // Apps still waiting for the epoch get one: their first cycle is already STOP, so
        // they end at once and report.
        if self.epoch_ns.is_none() {
            self.publish_epoch(apps);
        }
    }

    fn publish_epoch(&mut self, apps: &mut [App]) {
        let epoch = monotonic_now_ns() + self.opts.epoch_margin_ns;
        self.epoch_ns = Some(epoch);
        self.shared.block().epoch_ns.store(epoch, Ordering::Release);
        for a in apps.iter_mut() {
            if a.waiting {
                a.waiting = false;
                if let Some(t) = a.conn {
                    self.join(a, t, epoch, 0);
                }
            }
        }
        if let Some(n) = &self.notifier {
            n.send("READY=1");
        }
    }

    /// The first hyperperiod boundary a process joining now can still make (a restart, or
    /// a new version standing by).
    fn first_join_cycle(&self, epoch_ns: u64) -> u64 {
        let at = monotonic_now_ns() + self.opts.epoch_margin_ns;
        at.saturating_sub(epoch_ns)
            .div_ceil(self.plan.hyperperiod_ns)
    }

    fn join(&mut self, a: &mut App, t: Token, epoch_ns: u64, start_cycle: u64) {
        a.joined = true;
        a.state = AppState::Running;
        a.last_beat_ns = epoch_ns + start_cycle.saturating_mul(self.plan.hyperperiod_ns);
        self.reply(
            t,
            &Response::Join {
                epoch_ns,
                start_cycle,
            },
            false,
        );
    }

    /// Whether `pid` is a process of this run's apps (an owner or one standing by).
    fn is_app_process(&self, apps: &[App], pid: u32) -> bool {
        apps.iter().any(|a| a.pid == Some(pid)) || self.is_spare_process(pid)
    }

    fn timers(&mut self, apps: &mut [App]) -> Result<(), String> {
        self.update_tick(apps);
        let now = monotonic_now_ns();
        // Clients that connected and sent no whole request in time hold a slot for nothing.
        let idle: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                !c.app_process
                    && !c.requested
                    && now > c.accepted_ns.saturating_add(CLIENT_REQUEST_TIMEOUT_NS)
            })
            .map(|(t, _)| *t)
            .collect();
        for t in idle {
            if let Some(c) = self.conns.remove(&t) {
                log::warn!(
                    "takt run: control socket: closed pid {}'s connection: no whole request within {}",
                    c.peer.pid,
                    format_ns(CLIENT_REQUEST_TIMEOUT_NS)
                );
            }
        }
        if let Some(n) = &self.notifier {
            if now >= self.next_watchdog_ns {
                n.send("WATCHDOG=1");
                self.next_watchdog_ns = now + n.watchdog_every.as_nanos() as u64;
            }
        }
        if self.epoch_ns.is_none() && now >= self.started_ns + self.opts.startup_timeout_ns {
            let late: Vec<String> = apps
                .iter()
                .filter(|a| a.hosted && !a.waiting)
                .map(|a| format!("`{}`", a.name))
                .collect();
            return Err(format!(
                "app(s) {} did not become ready within {}",
                late.join(", "),
                format_ns(self.opts.startup_timeout_ns)
            ));
        }
        let h = self.plan.hyperperiod_ns;
        let hb_timeout_ns = h.saturating_mul(10).max(2_000_000_000);
        let running = !self.stopping
            && self.opts.clock == ClockKind::Real
            && self.end_ns().is_some_and(|e| now < e);
        for (i, a) in apps.iter_mut().enumerate() {
            let beat = self.shared.block().apps[i].heartbeat();
            if beat != a.last_beat {
                a.last_beat = beat;
                a.last_beat_ns = now;
            }
            if running
                && a.joined
                && a.child.is_some()
                && now > a.last_beat_ns.saturating_add(hb_timeout_ns)
                && self.control().active_mode() != STOP
            {
                log::error!(
                    "takt run: app `{}` missed its heartbeat for {}; killing it",
                    a.name,
                    format_ns(now - a.last_beat_ns)
                );
                if let Some(pid) = a.pid {
                    kill_hard(pid);
                }
                a.last_beat_ns = now; // one kill per timeout; the exit is reaped next
            }
        }
        // Anything still running long after the end is hung: end it.
        let end = match (self.stop_at_ns, self.end_ns()) {
            (Some(s), Some(e)) => Some(s.min(e)),
            (s, e) => s.or(e),
        };
        if let Some(end) = end {
            if now > end.saturating_add(self.grace_ns()) {
                // Standby and dismissed processes too (#12.8): the run ends.
                self.kill_spares();
                for a in apps.iter_mut() {
                    if let Some(pid) = a.pid {
                        log::warn!(
                            "takt run: app `{}` did not end after the run; killing it",
                            a.name
                        );
                        kill_hard(pid);
                    }
                }
            }
        }
        Ok(())
    }
}

/// A stand-in while an app is borrowed out of the slice (see `handle` and `ended`).
fn placeholder() -> App {
    App {
        name: String::new(),
        supervision: Supervision::default(),
        hosted: false,
        child: None,
        pid: None,
        state: AppState::Stopped,
        history: RestartHistory::default(),
        incarnation: 0,
        conn: None,
        waiting: false,
        version: String::new(),
        last_beat: 0,
        last_beat_ns: 0,
        joined: false,
        result: None,
        exe: None,
        ota_version: 0,
        next_incarnation: 0,
    }
}

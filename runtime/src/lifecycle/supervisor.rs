//! The supervisor: one process per app, one epoch, health supervision, restarts, the
//! control socket; all on one mio event loop.
//!
//! Owns: the app processes of one run and everything decided about them. It must never run
//! a task, and never wait by spinning: it sleeps in `Poll::poll` until a child exits
//! (SIGCHLD through signal-hook-mio), a control connection has data, or its next timer is
//! due (startup deadline, heartbeat check, systemd watchdog, end of run).

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGCHLD, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::dispatch::{self, ClockKind, RunControl, RunReport, TaskStats, STOP};
use crate::manifest::{Deployment, Escalation, Supervision};
use crate::plan::Plan;
use crate::sync::Ordering;
use crate::time::{format_ns, monotonic_now_ns};

use super::app_main::AppArgs;
use super::host::tasks_of;
use super::host_plan::{HostPlan, HostPlanFile, HostRun};
use super::notify::Notifier;
use super::peer::{self, PeerCred};
use super::policy::{Decision, ExitKind, RestartHistory};
use super::shm::{SharedControl, MAX_APPS};
use super::wire::{self, AppRun, AppState, AppStatus, Request, Response, StatusReport, WireError};
use crate::process::{kill_hard, set_umask, spawn_bound_to_parent};

mod staged_file;
mod update;
pub use update::{offline_report, KILL_POINTS};

const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
const FIRST_CONNECTION: usize = 2;
/// Most connections of clients (`takt status|mode|stop|ota`) open at once. App processes'
/// connections are counted apart ([`MAX_APP_CONNECTIONS`]), so clients can never keep an
/// app (or a new version's standby) from registering. At the cap, the oldest client that
/// has not sent a request yet is closed for the new one (issue #12.5).
const MAX_CLIENTS: usize = 128;
/// Most connections of app processes: every app's process and one standing by, twice over
/// for connections of processes that are ending.
const MAX_APP_CONNECTIONS: usize = 4 * MAX_APPS;
/// How long a client may take to deliver its request after it connected; an idle or
/// half-sent one is closed after this (issue #12.5).
const CLIENT_REQUEST_TIMEOUT_NS: u64 = 5_000_000_000;
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

struct Conn {
    stream: UnixStream,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    close_after_flush: bool,
    /// Who connected, as the kernel says (`SO_PEERCRED`).
    peer: PeerCred,
    /// Whether the peer was one of the run's app processes when it connected.
    app_process: bool,
    accepted_ns: u64,
    /// Whether a whole request arrived (an idle client has none).
    requested: bool,
}

/// Removes the socket file when the supervisor ends (however it ends, short of `kill -9`).
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Kills every app process still running when the supervisor returns early.
struct Children<'a>(&'a mut Vec<App>);

impl Drop for Children<'_> {
    fn drop(&mut self) {
        for a in self.0.iter_mut() {
            if let Some(mut c) = a.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
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

/// Binds the control socket owner-only, replacing a stale socket file of a dead supervisor.
fn bind_control(path: &Path) -> Result<(UnixListener, SocketFile), String> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "another supervisor is listening on {}: stop it (`takt stop --control {}`) or pass another --control path",
                path.display(),
                path.display()
            ));
        }
        std::fs::remove_file(path).map_err(|e| {
            format!(
                "cannot remove the stale control socket {}: {e}",
                path.display()
            )
        })?;
    }
    // Owner-only from the first instant: no window in which others could connect.
    let old = set_umask(0o177);
    let bound = UnixListener::bind(path);
    set_umask(old);
    let listener =
        bound.map_err(|e| format!("cannot create the control socket {}: {e}", path.display()))?;
    let guard = SocketFile(path.to_path_buf());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot make {} owner-only: {e}", path.display()))?;
    Ok((listener, guard))
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

    /// Starts one process of app `name` (index `index`) running `exe` (`None`: the host
    /// program), bound to the supervisor's life.
    fn start_process(
        &self,
        name: &str,
        exe: Option<&Path>,
        incarnation: u32,
        version: u64,
        standby: bool,
    ) -> Result<Child, String> {
        let mut cmd = match exe {
            Some(e) => Command::new(e),
            None => {
                let mut c = Command::new(&self.opts.host.program);
                c.args(&self.opts.host.subcommand);
                c
            }
        };
        cmd.args(
            AppArgs {
                host: self.host_plan.clone(),
                app: name.to_string(),
                incarnation,
                version,
                standby,
            }
            .to_args(),
        );
        spawn_bound_to_parent(&mut cmd).map_err(|e| {
            format!(
                "cannot start app `{name}` ({}): {e}",
                exe.unwrap_or(&self.opts.host.program).display()
            )
        })
    }

    fn spawn(&mut self, app: &mut App, index: usize) -> Result<(), String> {
        let child = self.start_process(
            &app.name,
            app.exe.as_deref(),
            app.incarnation,
            app.ota_version,
            false,
        )?;
        app.pid = Some(child.id());
        app.child = Some(child);
        app.conn = None;
        app.waiting = false;
        app.joined = false;
        app.result = None;
        app.last_beat = 0;
        self.shared.block().apps[index].reset_heartbeat();
        Ok(())
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

    /// Makes room for one more client: `false` when every client slot holds a client that
    /// sent its request (and waits for the answer); otherwise the oldest idle one is closed.
    fn client_slot(&mut self) -> bool {
        let clients = self.conns.values().filter(|c| !c.app_process).count();
        if clients < MAX_CLIENTS {
            return true;
        }
        let oldest_idle = self
            .conns
            .iter()
            .filter(|(_, c)| !c.app_process && !c.requested)
            .min_by_key(|(_, c)| c.accepted_ns)
            .map(|(t, _)| *t);
        match oldest_idle {
            Some(t) => {
                if let Some(c) = self.conns.remove(&t) {
                    log::warn!(
                        "takt run: control socket: {MAX_CLIENTS} clients are connected; closed the oldest idle one (pid {})",
                        c.peer.pid
                    );
                }
                true
            }
            None => false,
        }
    }

    fn accept(&mut self, apps: &[App], poll: &Poll, listener: &mut UnixListener) {
        loop {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    let peer = match peer::credentials(&stream) {
                        Ok(p) => p,
                        Err(e) => {
                            log::warn!("takt run: control socket: refused a connection whose peer is unknown ({e})");
                            continue; // dropped: closes the connection
                        }
                    };
                    if peer.uid != self.owner_uid && peer.uid != 0 {
                        log::warn!(
                            "takt run: control socket: refused pid {} of uid {}: only uid {} (the supervisor's) or root may connect",
                            peer.pid, peer.uid, self.owner_uid
                        );
                        continue;
                    }
                    let app_process = self.is_app_process(apps, peer.pid);
                    if app_process {
                        let n = self.conns.values().filter(|c| c.app_process).count();
                        if n >= MAX_APP_CONNECTIONS {
                            log::warn!("takt run: control socket: app process {} refused: {n} app connections are open", peer.pid);
                            continue;
                        }
                    } else if !self.client_slot() {
                        log::warn!(
                            "takt run: control socket: refused pid {}: {MAX_CLIENTS} clients wait for answers",
                            peer.pid
                        );
                        continue;
                    }
                    let t = Token(self.next_token);
                    self.next_token += 1;
                    if poll
                        .registry()
                        .register(&mut stream, t, Interest::READABLE | Interest::WRITABLE)
                        .is_ok()
                    {
                        self.conns.insert(
                            t,
                            Conn {
                                stream,
                                inbuf: Vec::new(),
                                outbuf: Vec::new(),
                                close_after_flush: false,
                                peer,
                                app_process,
                                accepted_ns: monotonic_now_ns(),
                                requested: false,
                            },
                        );
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    log::error!("takt run: accepting a control connection failed: {e}");
                    return;
                }
            }
        }
    }

    /// Reads what a connection sent, answers every whole frame, flushes answers.
    fn service(&mut self, apps: &mut [App], t: Token) {
        let mut closed = false;
        let mut frames: Vec<Result<Request, WireError>> = Vec::new();
        if let Some(c) = self.conns.get_mut(&t) {
            let mut buf = [0u8; 4096];
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => c.inbuf.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
                // Never buffer more than one frame's worth from a peer.
                if c.inbuf.len() > wire::MAX_MESSAGE_BYTES + 4 {
                    break;
                }
            }
            while c.inbuf.len() >= 4 && !c.close_after_flush {
                let prefix = [c.inbuf[0], c.inbuf[1], c.inbuf[2], c.inbuf[3]];
                match wire::check_length(prefix) {
                    Err(e) => {
                        c.requested = true;
                        frames.push(Err(e));
                        c.inbuf.clear();
                        break;
                    }
                    Ok(n) if c.inbuf.len() >= 4 + n => {
                        c.requested = true;
                        frames.push(wire::decode::<Request>(&c.inbuf[4..4 + n]));
                        c.inbuf.drain(..4 + n);
                    }
                    Ok(_) => break,
                }
            }
        }
        for f in frames {
            match f {
                Ok(req) => self.handle(apps, t, req),
                Err(e) => {
                    log::warn!("takt run: control socket: {e}");
                    self.reply(t, &Response::Refused(e.to_string()), true);
                }
            }
        }
        self.flush(t);
        if closed {
            self.drop_conn(apps, t);
        }
    }

    fn drop_conn(&mut self, apps: &mut [App], t: Token) {
        self.conns.remove(&t);
        for a in apps.iter_mut() {
            if a.conn == Some(t) {
                a.conn = None;
                a.waiting = false;
            }
        }
    }

    fn reply(&mut self, t: Token, r: &Response, close: bool) {
        let frame = match wire::encode(r) {
            Ok(f) => f,
            Err(e) => match wire::encode(&Response::Refused(format!("cannot answer: {e}"))) {
                Ok(f) => f,
                Err(_) => return,
            },
        };
        if let Some(c) = self.conns.get_mut(&t) {
            c.outbuf.extend_from_slice(&frame);
            c.close_after_flush |= close;
        }
        self.flush(t);
    }

    fn flush(&mut self, t: Token) {
        let mut done = false;
        if let Some(c) = self.conns.get_mut(&t) {
            while !c.outbuf.is_empty() {
                match c.stream.write(&c.outbuf) {
                    Ok(0) => {
                        done = true;
                        break;
                    }
                    Ok(n) => {
                        c.outbuf.drain(..n);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        done = true;
                        break;
                    }
                }
            }
            done |= c.outbuf.is_empty() && c.close_after_flush;
        }
        if done {
            self.conns.remove(&t);
        }
    }

    fn app_index(&self, apps: &[App], name: &str) -> Option<usize> {
        apps.iter().position(|a| a.name == name)
    }

    /// Refuses `req` unless connection `t`'s peer may ask it: app processes speak only for
    /// themselves (checked where they register), and everything else (status, stop, modes,
    /// updates) is the owner's: the supervisor's uid or root, from a process that is
    /// neither an app process nor started by one (issue #12.6).
    fn authorize(&self, apps: &[App], t: Token, req: &Request) -> Result<(), String> {
        let Some(peer) = self.conns.get(&t).map(|c| c.peer) else {
            return Err("the connection is gone".into());
        };
        if matches!(req, Request::AppReady { .. } | Request::AppFinished { .. }) {
            return Ok(());
        }
        let what = match req {
            Request::Status => "read the status",
            Request::SetMode { .. } => "switch modes",
            Request::Stop => "stop the run",
            _ => "touch updates",
        };
        let rule = format!(
            "only the deployment's owner (uid {}, or root), from outside the apps' process trees, may {what}",
            self.owner_uid
        );
        if peer.uid != self.owner_uid && peer.uid != 0 {
            return Err(format!(
                "peer pid {} runs as uid {}; {rule}",
                peer.pid, peer.uid
            ));
        }
        let me = std::process::id();
        match peer::app_ancestor(peer.pid, me, |p| self.is_app_process(apps, p)) {
            Ok(None) => Ok(()),
            Ok(Some(p)) => {
                let name = apps
                    .iter()
                    .find(|a| a.pid == Some(p))
                    .map(|a| a.name.clone())
                    .or_else(|| self.spare_app_name(p))
                    .unwrap_or_default();
                let who = if p == peer.pid {
                    format!("peer pid {} is a process of app `{name}`", peer.pid)
                } else {
                    format!(
                        "peer pid {} was started by app `{name}` (its process {p})",
                        peer.pid
                    )
                };
                Err(format!("{who}; {rule}"))
            }
            Err(why) => Err(format!(
                "peer pid {}: {why}, so it cannot be told from an app's process; {rule}",
                peer.pid
            )),
        }
    }

    fn handle(&mut self, apps: &mut [App], t: Token, req: Request) {
        if let Err(why) = self.authorize(apps, t, &req) {
            log::warn!("takt run: control socket: refused: {why}");
            self.reply(t, &Response::Refused(why), true);
            return;
        }
        match req {
            Request::Status => {
                let s = self.status(apps);
                self.reply(t, &Response::Status(s), true);
            }
            Request::SetMode { name } => match self.d.mode_id(&name) {
                Some(m) if !self.stopping => {
                    self.control().request_mode(m);
                    self.requested_mode = Some(m);
                    log::info!("takt run: mode `{name}` requested over the control socket");
                    self.reply(
                        t,
                        &Response::Done(format!(
                            "mode `{name}` requested: every core switches at the next hyperperiod boundary"
                        )),
                        true,
                    );
                }
                Some(_) => self.reply(
                    t,
                    &Response::Refused("the run is stopping; modes can no longer change".into()),
                    true,
                ),
                None => {
                    let names: Vec<&str> = self.d.modes.iter().map(|m| m.name.as_str()).collect();
                    self.reply(
                        t,
                        &Response::Refused(format!(
                            "deployment `{}` has no mode `{name}`; allowed are {names:?}",
                            self.d.name
                        )),
                        true,
                    );
                }
            },
            Request::Stop => {
                self.stop(apps, "takt stop");
                self.reply(
                    t,
                    &Response::Done("stopping every app at the next hyperperiod boundary".into()),
                    true,
                );
            }
            Request::AppReady { app, pid, version } => {
                let Some(i) = self.app_index(apps, &app) else {
                    self.reply(t, &Response::Refused(format!("no app `{app}`")), true);
                    return;
                };
                let peer = self.conns.get(&t).map_or(0, |c| c.peer.pid);
                if peer != pid {
                    log::warn!(
                        "takt run: control socket: refused: peer pid {peer} claims to be process {pid} of app `{app}`"
                    );
                    self.reply(
                        t,
                        &Response::Refused(format!(
                            "peer pid {peer} claims to be process {pid} of app `{app}`; an app process speaks only for itself"
                        )),
                        true,
                    );
                    return;
                }
                if apps[i].pid != Some(pid) {
                    if self.spare_ready(apps, i, pid, &version, t) {
                        return;
                    }
                    self.reply(
                        t,
                        &Response::Refused(format!(
                            "process {pid} is not the supervised process of app `{app}`"
                        )),
                        true,
                    );
                    return;
                }
                let a = &mut apps[i];
                a.conn = Some(t);
                a.version = version;
                match self.epoch_ns {
                    None => {
                        a.waiting = true;
                        if apps.iter().all(|a| !a.hosted || a.waiting) {
                            self.publish_epoch(apps);
                        }
                    }
                    Some(epoch) => {
                        // A restarted app joins at the first boundary it can still make.
                        let start_cycle = self.first_join_cycle(epoch);
                        log::info!(
                            "takt run: app `{app}` (pid {pid}) rejoins at hyperperiod {start_cycle}"
                        );
                        let mut a = std::mem::replace(&mut apps[i], placeholder());
                        self.join(&mut a, t, epoch, start_cycle);
                        apps[i] = a;
                    }
                }
            }
            Request::OtaStage { .. }
            | Request::OtaActivate { .. }
            | Request::OtaRollback { .. }
            | Request::OtaStatus => self.handle_ota(apps, t, req),
            Request::AppFinished { app, result } => {
                if self.spare_finished(t, &result) {
                    self.reply(t, &Response::Done("results received".into()), true);
                    return;
                }
                if let Some(i) = self.app_index(apps, &app) {
                    if apps[i].conn == Some(t) {
                        if let Err(e) = &result {
                            log::error!("takt run: app `{app}` failed: {e}");
                        }
                        apps[i].result = Some(result);
                        self.reply(t, &Response::Done("results received".into()), true);
                        return;
                    }
                }
                self.reply(
                    t,
                    &Response::Refused(format!(
                        "this connection does not belong to the current process of app `{app}`"
                    )),
                    true,
                );
            }
        }
    }

    /// Collects every app process that ended, and decides what follows.
    fn reap(&mut self, apps: &mut [App]) {
        for i in 0..apps.len() {
            let status = match apps[i].child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(s))) => s,
                _ => continue,
            };
            apps[i].child = None;
            apps[i].pid = None;
            // SYNC POINT: Release pairs with the Acquire loads of the lockstep waits.
            self.shared.block().sim_progress[i]
                .store(crate::dispatch::lockstep::DONE, Ordering::Release);
            self.shared.block().sim_bell.ring();
            if let Some(t) = apps[i].conn.take() {
                self.conns.remove(&t);
            }
            if self.owner_ended_in_update(i, status) {
                continue;
            }
            self.ended(apps, i, status);
        }
        self.reap_spares();
    }

    fn ended(&mut self, apps: &mut [App], i: usize, status: ExitStatus) {
        let now = monotonic_now_ns();
        let over = self.stopping || self.end_ns().is_some_and(|e| now >= e);
        let reported_ok = matches!(apps[i].result, Some(Ok(_)));
        let exit = if status.success() {
            ExitKind::Clean
        } else {
            ExitKind::Failure
        };
        let name = apps[i].name.clone();
        if over || reported_ok {
            apps[i].state = if exit == ExitKind::Clean && reported_ok {
                AppState::Stopped
            } else {
                AppState::Failed
            };
            if apps[i].state == AppState::Failed {
                log::error!("takt run: app `{name}` ended at the end of the run: {status}");
                if apps[i].result.is_none() {
                    apps[i].result = Some(Err(format!("the process ended: {status}")));
                }
            }
            return;
        }
        log::error!("takt run: app `{name}` ended mid-run: {status}");
        let sup = apps[i].supervision;
        match apps[i].history.decide(&sup, exit, now) {
            Decision::Restart => {
                apps[i].state = AppState::Restarting;
                apps[i].incarnation = apps[i].next_incarnation;
                apps[i].next_incarnation += 1;
                log::warn!(
                    "takt run: restarting app `{name}` (restart {} of the run)",
                    apps[i].history.total
                );
                let mut a = std::mem::replace(&mut apps[i], placeholder());
                let r = self.spawn(&mut a, i);
                apps[i] = a;
                if let Err(e) = r {
                    apps[i].state = AppState::Failed;
                    self.escalate(apps, i, sup.escalate, &e);
                }
            }
            Decision::Stopped => apps[i].state = AppState::Stopped,
            Decision::Escalate(e) => {
                apps[i].state = AppState::Failed;
                let why = format!("the process ended: {status}");
                self.escalate(apps, i, e, &why);
            }
        }
        // An app that is gone for good no longer holds up the epoch.
        if self.epoch_ns.is_none()
            && !self.stopping
            && apps.iter().any(|a| a.waiting)
            && apps
                .iter()
                .all(|a| !a.hosted || a.waiting || a.child.is_none())
        {
            self.publish_epoch(apps);
        }
    }

    fn escalate(&mut self, apps: &mut [App], i: usize, e: Escalation, why: &str) {
        let name = apps[i].name.clone();
        apps[i].result = Some(Err(why.to_string()));
        match e {
            Escalation::Stop => {
                self.failure.get_or_insert(format!(
                    "app `{name}` failed ({why}) and its escalation is `stop`"
                ));
                self.stop(apps, &format!("app `{name}` failed"));
            }
            Escalation::Mode(m) => {
                let mode = self.d.modes.get(m).map_or("?", |m| m.name.as_str());
                log::error!("takt run: app `{name}` failed ({why}); escalating to mode `{mode}`");
                self.control().request_mode(m);
                self.requested_mode = Some(m);
            }
        }
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

    fn status(&self, apps: &[App]) -> StatusReport {
        let now = monotonic_now_ns();
        let b = self.shared.block();
        let mode_name = |m: usize| {
            if m == STOP {
                "stop".to_string()
            } else {
                self.d
                    .modes
                    .get(m)
                    .map_or_else(|| format!("#{m}"), |m| m.name.clone())
            }
        };
        let active = if self.epoch_ns.is_some() {
            self.control().active_mode()
        } else {
            self.d.default_mode
        };
        StatusReport {
            deployment: self.d.name.clone(),
            mode: mode_name(active),
            requested_mode: self.requested_mode.filter(|&m| m != active).map(mode_name),
            uptime_ns: now.saturating_sub(self.started_ns),
            cycle: self.control().cycle(),
            phase: if self.stopping {
                "stopping"
            } else if self.epoch_ns.is_none() {
                "starting"
            } else {
                "running"
            }
            .into(),
            apps: apps
                .iter()
                .enumerate()
                .map(|(i, a)| AppStatus {
                    name: a.name.clone(),
                    pid: a.pid,
                    state: a.state,
                    restarts: a.history.total,
                    heartbeat_age_ns: (a.last_beat > 0).then(|| now.saturating_sub(a.last_beat_ns)),
                    heartbeat: b.apps[i].heartbeat(),
                    overruns: b.apps[i].overruns(),
                    missed: b.apps[i].missed(),
                    overruns_platform: b.apps[i].overruns_platform(),
                    missed_platform: b.apps[i].missed_platform(),
                    faults: b.apps[i].faults(),
                    version: a.version.clone(),
                })
                .collect(),
            updates_disabled: self.updates.as_ref().and_then(|u| u.read_only()),
        }
    }

    fn outcome(&mut self, apps: &mut [App]) -> SuperviseOutcome {
        let d = self.d;
        let mut tasks: Vec<TaskStats> = Vec::new();
        let mut reports = Vec::new();
        let mut warnings: Vec<String> = Vec::new();
        let mut traces = Vec::new();
        let mut realtime = true;
        let mut wall_ns = 0;
        let mut failure = self.failure.clone();
        for a in apps.iter() {
            match &a.result {
                Some(Ok(r)) => {
                    tasks.extend(r.tasks.iter().map(TaskStats::from));
                    reports.extend(r.task_reports());
                    for w in &r.warnings {
                        if !warnings.contains(w) {
                            warnings.push(w.clone());
                        }
                    }
                    if let Some(t) = &r.trace {
                        traces.push((a.name.clone(), t.clone()));
                    }
                    realtime &= r.realtime;
                    wall_ns = wall_ns.max(r.wall_ns);
                }
                Some(Err(e)) => {
                    realtime = false;
                    if a.state == AppState::Failed && failure.is_none() {
                        // An app that failed for good under a mode escalation does not fail
                        // the run; one whose dispatch failed at the end does.
                        if !matches!(a.supervision.escalate, Escalation::Mode(_)) {
                            failure = Some(format!("app `{}` failed: {e}", a.name));
                        }
                    }
                }
                None => {
                    // It ended mid-run without an error and without its report (a clean
                    // exit, or a report the supervisor could not read): its tasks are
                    // missing from the summary and the digest, so the run did not do
                    // what it was asked.
                    if a.state == AppState::Stopped
                        && failure.is_none()
                        && !matches!(a.supervision.escalate, Escalation::Mode(_))
                    {
                        failure = Some(format!(
                            "app `{}` ended before the end of the run without sending its report; its tasks are missing from the results",
                            a.name
                        ));
                    }
                }
            }
        }
        // Versions an update replaced ran part of the run: their jobs count too, under
        // their task names marked with the version.
        for (app, version, r) in self.spare_results() {
            tasks.extend(r.tasks.iter().map(|t| {
                let mut s = TaskStats::from(t);
                s.name = format!("{} (v{version}, replaced)", s.name);
                s
            }));
            if let Some(t) = &r.trace {
                traces.push((format!("{app} v{version}"), t.clone()));
            }
        }
        tasks.sort_by_key(|t| d.task_id(&t.name).unwrap_or(usize::MAX));
        reports.sort_by(|a, b| a.0.cmp(&b.0));
        let digest = dispatch::combine_digests(&reports);
        let mode_history = dispatch::mode_history(d, self.control());
        let cycles = if self.epoch_ns.is_some() {
            (self.control().cycle() + 1).min(self.cycles)
        } else {
            0
        };
        let status = self.status(apps);
        SuperviseOutcome {
            report: RunReport {
                clock: self.opts.clock,
                realtime,
                cycles,
                hyperperiod_ns: self.plan.hyperperiod_ns,
                wall_ns,
                tasks,
                mode_history,
                reports,
                warnings,
                digest,
                trace: None,
            },
            apps: status.apps,
            traces,
            failure,
        }
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

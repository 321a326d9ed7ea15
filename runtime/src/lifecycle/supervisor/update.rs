//! Over-the-air updates in the supervisor: stage, activate (hot swap or at an update-safe
//! mode), probation, commit and rollback of one app inside the running schedule.
//!
//! Owns: the journal of every app (on real files, [`FsStorage`]), the processes of versions
//! that stand by beside the running one ("spares"), and the one update operation in flight.
//! It must never run a task or pick a window: the switch itself is a handover decided by the
//! dispatchers at a hyperperiod boundary ([`RunControl::request_handover`]); this module
//! only requests it, watches it happen and records every step in the journal first.
//!
//! # One update, step by step (journal transitions in brackets)
//!
//! ```text
//!   stage     verify signature, anti-rollback, ports, schedulability; unpack  [Staged]
//!   activate  [Activating]; start the new version standing by (--standby)
//!   warm-up   it builds its tasks, opens its ports (connections and history arrive),
//!             and follows the schedule without running a window or publishing
//!   switch    handover requested; decided with the next cycle (hot swap) or the next
//!             cycle of an update-safe mode; the old version now stands by  [Probation]
//!   probation for the manifest's window, judged by [`probation::judge`]: only
//!             overruns and misses attributed to the version itself count (not the
//!             platform's), its p99 CPU time against the replaced version's, its
//!             heartbeat against the supervisor's own lateness, no crash:
//!             [Committed], the old version is dismissed
//!             otherwise: handover back at the next boundary, [RolledBack] marked bad,
//!             or not marked bad when the platform stalled the whole deployment
//! ```
//!
//! A kill of the supervisor at any point ends every app (PDEATHSIG); the next start reads
//! the journal, whose recovery (R1-R3) leaves exactly one version installed, and starts
//! that version's executable.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::thread::JoinHandle;

use mio::Token;

mod intake;
mod kernel_cpu;
mod probation;
mod switch;
mod watch;

use kernel_cpu::CpuReading;
use probation::Verdict;

use super::{staged_file, App, Supervisor};
use crate::dispatch::MAX_MODES;
use crate::lifecycle::wire::{
    AppRun, OtaAppReport, OtaReport, OtaSlotReport, ProbationReport, Request, Response,
};
use crate::manifest::{Catalog, Deployment};
use crate::ota::bundle::{self, Bundle, TrustedKeys, MAX_BUNDLE_BYTES};
use crate::ota::check::{check_stage, Installed};
use crate::ota::journal::{Journal, JournalError, JournalRecord, Recovery, UpdateState};
use crate::ota::slots::{self, Slot};
use crate::ota::storage::{FsStorage, Storage};
use crate::sync::Ordering;
use crate::time::{format_ns, monotonic_now_ns};

/// How often a stage reports progress to the client.
const PROGRESS_EVERY_NS: u64 = 200_000_000;

/// Test hook: `TAKT_OTA_KILL_AT=<point>` makes the supervisor `SIGKILL` itself right after
/// that step is durable, so the recovery test kills it at every journal transition. Only in
/// a build with the `test-hooks` feature (tests); a shipped binary neither reads the
/// variable nor contains its name (issue #12.11).
#[cfg(feature = "test-hooks")]
const KILL_AT_ENV: &str = "TAKT_OTA_KILL_AT";

/// The steps after which the kill hook can fire, in the order of an update.
pub const KILL_POINTS: [&str; 6] = [
    "staged",
    "activating",
    "switch-decided",
    "probation",
    "committed",
    "rolled-back",
];

/// A process of an app that is not the app's current owner: a new version warming up, or
/// the replaced version standing by during probation.
struct Spare {
    app: usize,
    child: Option<Child>,
    pid: u32,
    incarnation: u32,
    version: u64,
    /// What the process reported of itself when ready (`takt status` shows it).
    version_text: String,
    exe: Option<PathBuf>,
    conn: Option<Token>,
    joined: bool,
    result: Option<Result<AppRun, String>>,
    /// Dismissed (or told to end): its exit is no failure.
    expected_exit: bool,
    exit: Option<ExitStatus>,
    /// When its dismissal went into the shared block (monotonic ns): it is killed if it
    /// has not ended [`DISMISS_GRACE_NS`] (plus three hyperperiods) later.
    dismissed_ns: Option<u64>,
    /// Dismissed while another dismissal was still in the shared block: waits in line.
    dismiss_queued: bool,
}

/// How long a dismissed process may take to leave its walk, report and exit (beyond three
/// hyperperiods) before it is killed: a hung or stopped process must neither keep the run
/// from ending nor hold its ports into the next update (#12.8).
const DISMISS_GRACE_NS: u64 = 5_000_000_000;

enum Phase {
    /// The new version's process is starting; it reports ready, then stands by.
    Starting,
    /// It stands by until this cycle, then the handover is requested. `old_cpu`: the
    /// replaced process's CPU time (kernel) when this phase began, for probation's baseline.
    WarmingUp {
        until_cycle: u64,
        old_cpu: Option<CpuReading>,
    },
    /// The handover is requested and not decided yet.
    Switching {
        serial: u64,
        old_cpu: Option<CpuReading>,
    },
}

enum Op {
    Idle,
    /// A worker thread reads the bundle file (bounded) and verifies its signature, off the
    /// event loop (issue #12.3); the checks against the running system follow on the loop.
    Verifying {
        conn: Token,
        path: String,
        next_progress_ns: u64,
        worker: Option<JoinHandle<Result<bundle::Verified, String>>>,
    },
    Staging {
        app: usize,
        conn: Token,
        version: u64,
        total_bytes: u64,
        next_progress_ns: u64,
        worker: Option<JoinHandle<StageResult>>,
    },
    Activating {
        app: usize,
        spare: usize,
        version: u64,
        hot_swap: bool,
        conn: Option<Token>,
        deadline_ns: u64,
        phase: Phase,
    },
    Probation {
        app: usize,
        /// The replaced version, standing by.
        old: usize,
        version: u64,
        from_cycle: u64,
        until_cycle: u64,
        /// The app's health counters at the switch (boxed: the histogram is 512 bytes).
        base: Box<HealthSnapshot>,
        /// The counters at the supervisor's first look after the switch's hyperperiod: the
        /// new process's warm-up (cold caches, first-touch page faults) ends there. What it
        /// did before is reported, not judged; `None` until then.
        warm: Option<Box<HealthSnapshot>>,
        /// When the supervisor last looked (its own lateness is measured between looks).
        last_look_ns: u64,
        /// The supervisor's lateness in the window, and since the heartbeat last moved.
        late_ns: u64,
        late_since_beat_ns: u64,
        /// The heartbeat the supervisor last saw and when it saw it move.
        beat: u64,
        beat_seen_ns: u64,
        /// The worst job of the version's own in the window so far.
        worst: Option<crate::dispatch::OwnOverrun>,
        /// The window re-checks an earlier one that went over the overrun limit by a lone
        /// job (`probation` rule 1): what that one saw.
        rechecking: Option<String>,
        /// The new process's CPU time (kernel) at the end of its warm-up (probation rule 5).
        kernel_from: Option<CpuReading>,
        /// What its process may use per hyperperiod: its tasks' budgets plus the replaced
        /// process's measured rate (or the budgets again, when that was not measured).
        kernel_allowance_ns: u64,
    },
    RollingBack {
        app: usize,
        /// The failed version (now a spare once the handover is decided).
        old: usize,
        version: u64,
        serial: u64,
        why: String,
        /// Whether the version is to blame (marked bad) or the platform is.
        bad: bool,
    },
}

type StageResult = (Journal<FsStorage>, Result<Slot, String>);

/// An app's health counters at one instant (the switch of a probation).
#[derive(Clone, Debug)]
struct HealthSnapshot {
    overruns: u64,
    overruns_platform: u64,
    missed: u64,
    missed_platform: u64,
    /// Jobs that reported a fault (`StepContext::fault`).
    faults: u64,
    cpu: [u64; crate::dispatch::CPU_BUCKETS],
}

impl HealthSnapshot {
    fn of(h: &crate::dispatch::AppHealth) -> HealthSnapshot {
        HealthSnapshot {
            overruns: h.overruns(),
            overruns_platform: h.overruns_platform(),
            missed: h.missed(),
            missed_platform: h.missed_platform(),
            faults: h.faults(),
            cpu: h.cpu_histogram(),
        }
    }
    /// What happened between `self` and `now`.
    fn since(&self, now: &HealthSnapshot) -> HealthSnapshot {
        HealthSnapshot {
            overruns: now.overruns.saturating_sub(self.overruns),
            overruns_platform: now.overruns_platform.saturating_sub(self.overruns_platform),
            missed: now.missed.saturating_sub(self.missed),
            missed_platform: now.missed_platform.saturating_sub(self.missed_platform),
            faults: now.faults.saturating_sub(self.faults),
            cpu: std::array::from_fn(|i| now.cpu[i].saturating_sub(self.cpu[i])),
        }
    }
}

/// How late the supervisor's loop may look again before the excess counts as its own
/// lateness: it sleeps at most [`super::TICK`], plus scheduling slack.
const LOOK_SLACK_NS: u64 = 20_000_000;

/// The supervisor's update state.
pub(super) struct Updates {
    state_dir: PathBuf,
    trusted: TrustedKeys,
    catalog: Catalog,
    layouts: crate::ota::bundle::Layouts,
    warm_up_cycles: u64,
    probation_cycles: u64,
    /// The manifest's probation thresholds.
    limits: crate::manifest::ProbationLimits,
    heartbeat_timeout_ns: u64,
    /// Bit m: mode m is update-safe.
    safe_mask: u64,
    /// Per app (manifest order); `None` for an app without tasks or while a stage has it.
    journals: Vec<Option<Journal<FsStorage>>>,
    /// The last record of each app's journal (also while a stage has the journal).
    records: Vec<Option<JournalRecord>>,
    written: Vec<Arc<AtomicU64>>,
    last_result: Vec<Option<String>>,
    spares: Vec<Spare>,
    op: Op,
    #[cfg(feature = "test-hooks")]
    kill_at: Option<String>,
    /// The exclusive lock on `state_dir`, held for the supervisor's life (`None`: the
    /// directory is read-only and has no lock file).
    _lock: Option<crate::ota::lock::StateLock>,
    /// Why `state_dir` cannot be written: updates are disabled for the run (stage,
    /// activate and rollback refused with this reason), the installed versions run.
    read_only: Option<String>,
    /// The newest key document the vehicle has accepted (rotations and revocations).
    key_doc: Option<crate::ota::keys::KeyDocument>,
    /// Why the installed key document cannot be read: every stage is refused until a
    /// valid one is installed again (falling back to the manifest's keys would undo
    /// revocations).
    key_doc_error: Option<String>,
}

impl Updates {
    /// Opens (creating at version 0) every hosted app's journal, recovers interrupted
    /// transitions, and points each app at the executable of the version it must run.
    pub(super) fn open(
        d: &Deployment,
        o: &super::OtaOptions,
        apps: &mut [App],
    ) -> Result<Updates, String> {
        std::fs::create_dir_all(&o.state_dir).map_err(|e| {
            format!(
                "cannot create the OTA state directory {}: {e}",
                o.state_dir.display()
            )
        })?;
        // Before any journal is read: a second supervisor on this directory is refused
        // here, naming the holder, and never touches the journals.
        // A directory that cannot be written (a disk remounted read-only after errors, a
        // read-only bind mount) still runs the installed, verified versions, with updates
        // off and said so loudly: refusing to start would take every app off the road for
        // a fault of the update path alone.
        let (lock, read_only) = match crate::ota::lock::StateLock::acquire(&o.state_dir, "takt run")
        {
            Ok(lock) => (Some(lock), None),
            Err(e) if e.is_read_only() => {
                let cause = match &e {
                    crate::ota::lock::LockError::Io { error, .. } => error.to_string(),
                    other => other.to_string(),
                };
                let lock = crate::ota::lock::StateLock::acquire_read_only(&o.state_dir)
                    .map_err(|e| e.to_string())?;
                let why = format!(
                    "the OTA state directory {} cannot be written ({cause}){}",
                    o.state_dir.display(),
                    if lock.is_none() {
                        "; it has no lock file to lock"
                    } else {
                        ""
                    }
                );
                (lock, Some(why))
            }
            Err(e) => return Err(e.to_string()),
        };
        if let Some(why) = &read_only {
            log::warn!(
                "takt run: OTA: UPDATES DISABLED: {why}; the installed, verified versions run, and staging, activation and rollback are refused until the directory is writable and takt run restarts"
            );
        }
        let (key_doc, key_doc_error) = {
            let mut storage = FsStorage::new(&o.state_dir);
            let loaded = if read_only.is_some() {
                crate::ota::keys::load_installed_readonly(&mut storage, o.trusted.roots())
                    .map(|doc| (doc, Vec::new()))
            } else {
                crate::ota::keys::load_installed(&mut storage, o.trusted.roots())
            };
            match loaded {
                Ok((doc, notes)) => {
                    for n in notes {
                        log::warn!("takt run: OTA: {n}");
                    }
                    (doc, None)
                }
                Err(e) => {
                    log::error!("takt run: OTA: {e}; every stage is refused until then");
                    (None, Some(e))
                }
            }
        };
        let mut u = Updates {
            _lock: lock,
            read_only: read_only.clone(),
            key_doc,
            key_doc_error,
            state_dir: o.state_dir.clone(),
            trusted: o.trusted.clone(),
            catalog: o.catalog.clone(),
            layouts: o.layouts.clone(),
            warm_up_cycles: o.warm_up_cycles.max(1),
            probation_cycles: d.ota.probation.hyperperiods(d.hyperperiod_ns),
            limits: d.ota.limits,
            heartbeat_timeout_ns: d.ota.limits.heartbeat_timeout_ns(d.hyperperiod_ns),
            safe_mask: d
                .update_safe_modes
                .iter()
                .inspect(|&&m| assert!(m < MAX_MODES, "update-safe mode {m} out of range"))
                .fold(0, |mask, &m| mask | (1 << m)),
            journals: Vec::new(),
            records: Vec::new(),
            written: Vec::new(),
            last_result: vec![None; apps.len()],
            spares: Vec::new(),
            op: Op::Idle,
            #[cfg(feature = "test-hooks")]
            kill_at: std::env::var(KILL_AT_ENV).ok(),
        };
        for app in apps.iter_mut() {
            let written = Arc::new(AtomicU64::new(0));
            u.written.push(written.clone());
            if !app.hosted {
                u.journals.push(None);
                u.records.push(None);
                continue;
            }
            let storage = FsStorage::new(&o.state_dir).with_progress(written);
            let opened = match &read_only {
                Some(why) => Journal::open_read_only(storage, &app.name, why),
                None => Journal::open_or_factory(storage, &app.name),
            };
            let (j, recovery) =
                opened.map_err(|e| format!("OTA journal of app `{}`: {e}", app.name))?;
            let r = j.record().clone();
            // Repairs of the state (counter disagreement, fallback to the other slot, a
            // rebuilt journal): logged as warnings and kept for `takt ota status`.
            for note in j.notes() {
                log::warn!("takt run: OTA: {note}");
            }
            if !j.notes().is_empty() {
                u.last_result[u.journals.len()] = Some(j.notes().join("; "));
            }
            if recovery != Recovery::Nothing {
                let what = match recovery {
                    Recovery::Nothing => "",
                    Recovery::DroppedIncompleteStage => "dropped a stage that never completed",
                    Recovery::RevertedActivation => {
                        "reverted an activation that never switched (the version stays staged)"
                    }
                    Recovery::RevertedProbation => {
                        "rolled back a version that was on probation when the supervisor ended"
                    }
                    Recovery::FellBack => "the slot that should run is not intact (see below)",
                };
                log::warn!(
                    "takt run: OTA recovery: app `{}`: {what}; now {} with version {} installed",
                    app.name,
                    r.state.name(),
                    r.installed_version
                );
            }
            let (slot, version) = r.running();
            if version > 0 {
                let stamp = slots::verify(j.storage(), &app.name, slot).map_err(|e| {
                    format!(
                        "app `{}`: installed version {version} in slot {slot} cannot run: {e}; refusing to start a mix of versions",
                        app.name
                    )
                })?;
                if stamp.version != version {
                    return Err(format!(
                        "app `{}`: slot {slot} holds version {}, the journal says {version}; refusing to start a mix of versions",
                        app.name, stamp.version
                    ));
                }
                app.exe = Some(exe_path(&o.state_dir, &app.name, slot, &stamp)?);
                app.ota_version = version;
            }
            u.records.push(Some(r));
            u.journals.push(Some(j));
        }
        Ok(u)
    }

    /// Why updates are disabled in this run (the state directory cannot be written).
    pub(super) fn read_only(&self) -> Option<String> {
        self.read_only.clone()
    }

    #[cfg(not(feature = "test-hooks"))]
    fn kill_point(&self, _point: &str) {}

    #[cfg(feature = "test-hooks")]
    fn kill_point(&self, point: &str) {
        if self.kill_at.as_deref() == Some(point) {
            log::warn!("takt run: {KILL_AT_ENV}={point}: the supervisor kills itself (SIGKILL)");
            // SAFETY: kill(2) on our own pid with SIGKILL has no memory-safety concerns.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }

    /// Dismisses spare `k`: out of its walk at its next boundary, then it ends. The shared
    /// block holds one dismissal; a second one written before the first process saw it
    /// would orphan that process (#12.8), so a dismissal waits in line while an earlier
    /// dismissed process still lives ([`Updates::next_dismissal`] issues it).
    fn dismiss(&mut self, run: &crate::dispatch::RunControl, k: usize) {
        self.spares[k].expected_exit = true;
        if self.spares[k].dismissed_ns.is_some() || self.spares[k].dismiss_queued {
            return;
        }
        let busy = self
            .spares
            .iter()
            .enumerate()
            .any(|(i, s)| i != k && s.child.is_some() && s.dismissed_ns.is_some());
        if busy {
            self.spares[k].dismiss_queued = true;
        } else {
            run.dismiss(self.spares[k].app, self.spares[k].incarnation);
            self.spares[k].dismissed_ns = Some(monotonic_now_ns());
        }
    }

    /// Issues the dismissal waiting in line once no dismissed process lives any more.
    fn next_dismissal(&mut self, run: &crate::dispatch::RunControl) {
        if self
            .spares
            .iter()
            .any(|s| s.child.is_some() && s.dismissed_ns.is_some())
        {
            return;
        }
        for s in &mut self.spares {
            if s.dismiss_queued {
                s.dismiss_queued = false;
                if s.child.is_some() {
                    run.dismiss(s.app, s.incarnation);
                    s.dismissed_ns = Some(monotonic_now_ns());
                    return;
                }
            }
        }
    }

    /// Runs one journal transition on app `app`'s journal and refreshes the cached record.
    fn transition(
        &mut self,
        app: usize,
        f: impl FnOnce(&mut Journal<FsStorage>) -> Result<(), JournalError>,
    ) -> Result<(), String> {
        let Some(j) = self.journals.get_mut(app).and_then(|j| j.as_mut()) else {
            return Err("the app's journal is busy".into());
        };
        let r = f(j).map_err(|e| e.to_string());
        // Also after an error: a commit whose journal is durable but whose second
        // anti-rollback copy failed is committed (the next start repairs the copy).
        self.records[app] = Some(j.record().clone());
        r
    }
}

/// The path (in the state directory) of the installed executable a delta bundle of `app`
/// applies to. Refused, naming the app and both hashes, when the installed slot's stamp
/// records another executable: the vehicle runs another version than the delta was made
/// for. The stamp is only read here; the worker hashes the file itself before patching.
fn delta_base(
    storage: &FsStorage,
    app: &str,
    record: &JournalRecord,
    delta: &crate::ota::delta::Delta,
) -> Result<String, String> {
    let (slot, version) = record.running();
    if version == 0 {
        return Err(format!(
            "app `{app}` runs the manifest's executable, not a version installed by an update, so there is no installed slot for the delta bundle to apply to; stage a full bundle"
        ));
    }
    let stamp = slots::peek(storage, app, slot).map_err(|e| {
        format!("app `{app}`: installed version {version} in slot {slot} cannot be read as the delta's base: {e}")
    })?;
    let (_, _, found) = stamp
        .files
        .first()
        .ok_or_else(|| format!("slot {slot} of app `{app}` holds no executable"))?;
    if *found != delta.base_sha256 {
        return Err(format!(
            "app `{app}`: the delta bundle applies to the executable with SHA-256 {}, but installed version {version} (slot {slot}) has SHA-256 {}: the vehicle runs another version than the delta was made for; stage a full bundle, or a delta made from the installed executable",
            crate::ota::to_hex(&delta.base_sha256),
            crate::ota::to_hex(found)
        ));
    }
    slot_exe(app, slot, &stamp)
}

/// The bytes of the installed executable at `path` (from [`delta_base`]), bounded.
fn read_installed(storage: &FsStorage, path: Option<&str>) -> Result<Vec<u8>, String> {
    let path = path.ok_or("no installed executable was found for the delta")?;
    storage
        .read(path, crate::ota::bundle::MAX_ENTRY_BYTES)
        .map_err(|e| format!("{path}: {e}"))?
        .ok_or_else(|| format!("{path}: the installed executable is missing"))
}

/// The executable of a complete slot: its stamp's first file, relative to the state
/// directory.
fn slot_exe(app: &str, slot: Slot, stamp: &slots::SlotStamp) -> Result<String, String> {
    let dir = slots::slot_dir(app, slot).map_err(|e| e.to_string())?;
    let (name, _, _) = stamp
        .files
        .first()
        .ok_or_else(|| format!("slot {slot} of app `{app}` holds no executable"))?;
    Ok(format!("{dir}/{name}"))
}

/// [`slot_exe`] under `state_dir`.
fn exe_path(
    state_dir: &Path,
    app: &str,
    slot: Slot,
    stamp: &slots::SlotStamp,
) -> Result<PathBuf, String> {
    Ok(state_dir.join(slot_exe(app, slot, stamp)?))
}

/// `takt ota status` without a supervisor: reads every app's journal and slots, writes
/// nothing (an interrupted transition shows as it was left; the next start recovers it).
pub fn offline_report(d: &Deployment, state_dir: &Path) -> Result<OtaReport, String> {
    let storage = FsStorage::new(state_dir);
    let mut apps = Vec::new();
    for (i, a) in d.apps.iter().enumerate() {
        if !d.tasks.iter().any(|t| t.app == i) {
            continue;
        }
        // A damaged journal is reported for its app, not as a failed status: the next
        // start falls back to the anti-rollback record and the intact slot (R4, R5).
        let (record, note) = match Journal::peek(&storage, &a.name) {
            Ok(r) => (r, None),
            Err(e) => (
                None,
                Some(format!("{e}; the next start rebuilds it from the anti-rollback record and the intact slots")),
            ),
        };
        let mut report = app_report(&a.name, record.as_ref(), Some(&storage), note.clone(), None);
        if note.is_some() {
            report.state = "journal unreadable".into();
        }
        apps.push(report);
    }
    Ok(OtaReport {
        deployment: d.name.clone(),
        state_dir: state_dir.display().to_string(),
        cycle: None,
        apps,
        updates_disabled: None,
    })
}

fn app_report(
    name: &str,
    record: Option<&JournalRecord>,
    storage: Option<&FsStorage>,
    last_result: Option<String>,
    probation: Option<ProbationReport>,
) -> OtaAppReport {
    let slots = [Slot::A, Slot::B]
        .iter()
        .map(|&slot| {
            // The stamp only: hashing a slot's executable for a status would compete with
            // the running apps for memory bandwidth (measured: a 35 MB hash during a
            // status delayed releases on this VM). Slots are verified before they run.
            let (version, detail) = match storage.map(|s| slots::peek(s, name, slot)) {
                Some(Ok(stamp)) => (Some(stamp.version), "stamped".to_string()),
                Some(Err(e)) => (None, e.to_string()),
                None => (None, "being written".to_string()),
            };
            OtaSlotReport {
                slot: slot.name().into(),
                version,
                detail,
            }
        })
        .collect();
    let Some(r) = record else {
        return OtaAppReport {
            app: name.into(),
            state: "not installed".into(),
            installed_version: 0,
            installed_slot: "a".into(),
            running_version: 0,
            running_slot: "a".into(),
            update_version: None,
            slots,
            bad_versions: Vec::new(),
            last_result,
            probation,
        };
    };
    let (running_slot, running_version) = r.running();
    let update_version = match r.state {
        UpdateState::Idle => None,
        UpdateState::Staged { version, .. }
        | UpdateState::Activating { version, .. }
        | UpdateState::Probation { version, .. }
        | UpdateState::Committed { version, .. }
        | UpdateState::RolledBack { version, .. } => Some(version),
    };
    OtaAppReport {
        app: name.into(),
        state: r.state.name().into(),
        installed_version: r.installed_version,
        installed_slot: r.installed_slot.name().into(),
        running_version,
        running_slot: running_slot.name().into(),
        update_version,
        slots,
        bad_versions: r.bad_versions.clone(),
        last_result,
        probation,
    }
}

impl Supervisor<'_> {
    fn refuse(&mut self, t: Token, why: String) {
        log::warn!("takt run: OTA: refused: {why}");
        self.reply(t, &Response::Refused(why), true);
    }

    pub(super) fn handle_ota(&mut self, apps: &mut [App], t: Token, req: Request) {
        if self.updates.is_none() {
            self.refuse(
                t,
                "over-the-air updates are off in this run: start `takt run` with --ota-dir DIR (or `[ota] state_dir` in the manifest)".into(),
            );
            return;
        }
        let disabled = self.updates.as_ref().and_then(|u| u.read_only.clone());
        if let (Some(why), false) = (disabled, matches!(req, Request::OtaStatus)) {
            let what = match &req {
                Request::OtaStage { bundle } => format!("{bundle}: not staged"),
                Request::OtaActivate { app, .. } => format!("activate `{app}`: refused"),
                Request::OtaRollback { app } => format!("roll back `{app}`: refused"),
                _ => "refused".into(),
            };
            self.refuse(
                t,
                format!("{what}: updates are disabled in this run: {why}; nothing was changed"),
            );
            return;
        }
        match req {
            Request::OtaStatus => {
                let r = self.ota_report(apps);
                self.reply(t, &Response::Ota(r), true);
            }
            Request::OtaStage { bundle } => {
                if let Err(why) = self.start_stage(t, bundle.clone()) {
                    self.refuse(t, format!("{bundle}: {why}; nothing was changed"));
                }
            }
            Request::OtaActivate {
                app,
                hot_swap,
                timeout_ns,
            } => {
                if let Err(why) = self.activate(apps, t, &app, hot_swap, timeout_ns) {
                    self.refuse(t, format!("activate `{app}`: {why}"));
                }
            }
            Request::OtaRollback { app } => match self.rollback_request(apps, &app) {
                Ok(msg) => self.reply(t, &Response::Done(msg), true),
                Err(why) => self.refuse(t, format!("roll back `{app}`: {why}")),
            },
            _ => {}
        }
    }

    fn ota_report(&self, apps: &[App]) -> OtaReport {
        let Some(u) = &self.updates else {
            return OtaReport {
                deployment: self.d.name.clone(),
                state_dir: String::new(),
                cycle: None,
                apps: Vec::new(),
                updates_disabled: None,
            };
        };
        let b = self.shared.block();
        let reports = apps
            .iter()
            .enumerate()
            .filter(|(_, a)| a.hosted)
            .map(|(i, a)| {
                let probation = match &u.op {
                    Op::Probation {
                        app,
                        from_cycle,
                        until_cycle,
                        base,
                        late_ns,
                        ..
                    } if *app == i => {
                        let seen = base.since(&HealthSnapshot::of(&b.apps[i]));
                        Some(ProbationReport {
                            from_cycle: *from_cycle,
                            until_cycle: *until_cycle,
                            overruns: seen.overruns,
                            missed: seen.missed,
                            overruns_platform: seen.overruns_platform,
                            missed_platform: seen.missed_platform,
                            faults: seen.faults,
                            supervisor_late_ns: *late_ns,
                        })
                    }
                    _ => None,
                };
                app_report(
                    &a.name,
                    u.records[i].as_ref(),
                    u.journals[i].as_ref().map(|j| j.storage()),
                    u.last_result[i].clone(),
                    probation,
                )
            })
            .collect();
        OtaReport {
            deployment: self.d.name.clone(),
            state_dir: u.state_dir.display().to_string(),
            cycle: self.epoch_ns.map(|_| self.control().cycle()),
            apps: reports,
            updates_disabled: u.read_only.clone(),
        }
    }

    /// Hands the read and the signature check of a bundle file to a worker thread: a
    /// large bundle, a slow disk or a file whose size lies never stalls the event loop.
    fn start_stage(&mut self, t: Token, path: String) -> Result<(), String> {
        let u = self.updates.as_mut().ok_or("updates are off")?;
        if !matches!(u.op, Op::Idle) {
            return Err("another update is in progress (see `takt ota status`)".into());
        }
        // Without a readable key document nothing can be judged: it may revoke the signer.
        if let Some(e) = &u.key_doc_error {
            return Err(e.clone());
        }
        let trusted = u.trusted.clone();
        let key_doc = u.key_doc.clone();
        let file = PathBuf::from(&path);
        let worker = std::thread::Builder::new()
            .name("takt-ota-read".into())
            .spawn(move || {
                let bytes = staged_file::read_bounded(&file, MAX_BUNDLE_BYTES)?;
                bundle::verify(&bytes, &trusted, key_doc.as_ref(), bundle::now_unix_s())
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| format!("cannot start the read: {e}"))?;
        u.op = Op::Verifying {
            conn: t,
            path,
            next_progress_ns: monotonic_now_ns() + PROGRESS_EVERY_NS,
            worker: Some(worker),
        };
        Ok(())
    }

    /// Checks a verified bundle against the running system, then hands the unpack to a
    /// worker thread (the event loop keeps supervising; progress goes to the client every
    /// 200 ms).
    fn stage(&mut self, apps: &[App], t: Token, verified: bundle::Verified) -> Result<(), String> {
        let d = self.d;
        let u = self.updates.as_mut().ok_or("updates are off")?;
        if !matches!(u.op, Op::Idle) {
            return Err("another update is in progress (see `takt ota status`)".into());
        }
        let new_key_doc = verified.new_key_document;
        let b: Bundle = verified.bundle;
        let fr = &b.fragment;
        let app = d
            .apps
            .iter()
            .position(|a| a.name == fr.app)
            .ok_or_else(|| {
                format!(
                    "the bundle is for app `{}`, which deployment `{}` does not have",
                    fr.app, d.name
                )
            })?;
        if !apps[app].hosted {
            return Err(format!("app `{}` has no tasks to run", fr.app));
        }
        let record = u.records[app].clone().ok_or("the app's journal is busy")?;
        // A staged update nobody activated is replaced (journal transition 1b); one that is
        // switching or on probation must end first.
        let staged = matches!(
            record.state,
            crate::ota::journal::UpdateState::Staged { .. }
        );
        if !record.state.is_rest() && !staged {
            return Err(format!(
                "app `{}` has an update that is {} (version {} running); wait for its commit or roll it back (`takt ota rollback {}`) first",
                fr.app,
                record.state.name(),
                record.running().1,
                fr.app
            ));
        }
        let installed = Installed {
            version: record.rollback_floor(),
            bad_versions: record.bad_versions.clone(),
        };
        check_stage(d, &u.catalog, &u.layouts, &installed, &b).map_err(|e| e.to_string())?;
        fits_running_tables(d, &b).map_err(|e| e.to_string())?;
        // A delta applies only to the executable it was made from: refused here, from the
        // installed slot's stamp, before anything is written or a key document installed.
        let delta_base = match &b.delta {
            None => None,
            Some(delta) => {
                let j = u.journals[app]
                    .as_ref()
                    .ok_or("the app's journal is busy")?;
                Some(delta_base(j.storage(), &fr.app, &record, delta)?)
            }
        };
        // The bundle is accepted: a newer key document it carries is installed first
        // (both copies, durably), so its revocations hold from now on.
        if let Some(doc) = new_key_doc {
            crate::ota::keys::install(&mut FsStorage::new(&u.state_dir), &doc)
                .map_err(|e| format!("cannot install the carried key document: {e}"))?;
            log::info!(
                "takt run: OTA: key document version {} installed (signed by root key {})",
                doc.body.version,
                crate::ota::to_hex(&doc.signer)
            );
            u.key_doc = Some(doc);
        }
        let mut journal = u.journals[app].take().ok_or("the app's journal is busy")?;
        let total_bytes = b.installed_bytes();
        u.written[app].store(0, Ordering::Relaxed);
        let version = fr.version;
        log::info!(
            "takt run: OTA: staging app `{}` version {version} ({}, {total_bytes} bytes{}) signed by {}",
            fr.app,
            fr.version_label,
            b.delta.as_ref().map_or_else(String::new, |d| format!(
                ", as a delta of {} bytes",
                d.patch.len()
            )),
            crate::ota::to_hex(&b.signer)
        );
        let worker = std::thread::Builder::new()
            .name("takt-ota-stage".into())
            .spawn(move || {
                // A delta's executable is rebuilt here, off the event loop: read the
                // installed one, patch it (bounded), check the result's signed hash. Any
                // refusal comes before the slot is touched.
                let r = b
                    .into_entries(|| read_installed(journal.storage(), delta_base.as_deref()))
                    .map_err(|e| format!("the delta bundle: {e}; nothing was written"))
                    .and_then(|entries| {
                        journal.stage(version, &entries).map_err(|e| e.to_string())
                    });
                (journal, r)
            })
            .map_err(|e| format!("cannot start the unpack: {e}"))?;
        u.op = Op::Staging {
            app,
            conn: t,
            version,
            total_bytes,
            next_progress_ns: monotonic_now_ns(),
            worker: Some(worker),
        };
        Ok(())
    }

    fn activate(
        &mut self,
        apps: &mut [App],
        t: Token,
        name: &str,
        hot_swap: bool,
        timeout_ns: u64,
    ) -> Result<(), String> {
        let app = self
            .app_index(apps, name)
            .ok_or_else(|| format!("deployment `{}` has no app `{name}`", self.d.name))?;
        if self.stopping || self.epoch_ns.is_none() {
            return Err("the run is not running (starting or stopping)".into());
        }
        if apps[app].child.is_none() || !apps[app].joined {
            return Err(format!(
                "app `{name}` has no running process to take over from"
            ));
        }
        {
            let u = self.updates.as_ref().ok_or("updates are off")?;
            if !matches!(u.op, Op::Idle) {
                return Err("another update is in progress (see `takt ota status`)".into());
            }
            if !hot_swap && u.safe_mask == 0 {
                return Err(format!(
                    "{}: the manifest declares no update_safe_modes, so no mode is safe; use --hot-swap",
                    self.d.source
                ));
            }
        }
        let (slot, version) = match self.updates.as_ref().and_then(|u| u.records[app].clone()) {
            Some(JournalRecord {
                state: UpdateState::Staged { slot, version },
                ..
            }) => (slot, version),
            Some(r) => {
                return Err(format!(
                    "app `{name}` has nothing staged (its update is {}); stage a bundle first",
                    r.state.name()
                ))
            }
            None => return Err("the app's journal is busy".into()),
        };
        let state_dir = self
            .updates
            .as_ref()
            .map(|u| u.state_dir.clone())
            .unwrap_or_default();
        let stamp = {
            let u = self.updates.as_ref().ok_or("updates are off")?;
            let j = u.journals[app]
                .as_ref()
                .ok_or("the app's journal is busy")?;
            slots::verify(j.storage(), name, slot)
                .map_err(|e| format!("staged slot {slot} is not intact: {e}"))?
        };
        let exe = exe_path(&state_dir, name, slot, &stamp)?;
        let u = self.updates.as_mut().ok_or("updates are off")?;
        u.transition(app, |j| j.activate())?;
        u.kill_point("activating");
        let incarnation = apps[app].next_incarnation;
        apps[app].next_incarnation += 1;
        let child = match self.start_process(name, Some(&exe), incarnation, version, true) {
            Ok(c) => c,
            Err(e) => {
                if let Some(u) = self.updates.as_mut() {
                    let _ = u.transition(app, |j| j.roll_back());
                    u.kill_point("rolled-back");
                    u.last_result[app] = Some(format!(
                        "version {version} could not start ({e}); marked bad"
                    ));
                }
                return Err(e);
            }
        };
        log::info!(
            "takt run: OTA: app `{name}` version {version} started standing by (pid {}, incarnation {incarnation}); {}",
            child.id(),
            if hot_swap {
                "hot swap after warm-up".to_string()
            } else {
                format!("switch in the next update-safe mode (within {})", format_ns(timeout_ns))
            }
        );
        let u = self.updates.as_mut().ok_or("updates are off")?;
        u.spares.push(Spare {
            app,
            pid: child.id(),
            child: Some(child),
            incarnation,
            version,
            version_text: String::new(),
            exe: Some(exe),
            conn: None,
            joined: false,
            result: None,
            expected_exit: false,
            exit: None,
            dismissed_ns: None,
            dismiss_queued: false,
        });
        u.op = Op::Activating {
            app,
            spare: u.spares.len() - 1,
            version,
            hot_swap,
            conn: Some(t),
            deadline_ns: monotonic_now_ns()
                + self.opts.startup_timeout_ns
                + if hot_swap { 0 } else { timeout_ns },
            phase: Phase::Starting,
        };
        Ok(())
    }

    fn rollback_request(&mut self, apps: &[App], name: &str) -> Result<String, String> {
        let app = self
            .app_index(apps, name)
            .ok_or_else(|| format!("deployment `{}` has no app `{name}`", self.d.name))?;
        let u = self.updates.as_ref().ok_or("updates are off")?;
        match &u.op {
            Op::Probation { app: a, .. } if *a == app => {
                self.start_rollback("the integrator asked (`takt ota rollback`)".into(), true);
                Ok(format!(
                    "rolling app `{name}` back at the next hyperperiod boundary"
                ))
            }
            Op::Activating { app: a, .. } if *a == app => {
                self.abort_activation("the integrator asked (`takt ota rollback`)".into());
                Ok(format!(
                    "the activation of app `{name}` was withdrawn before its switch"
                ))
            }
            _ => {
                let r = u.records[app].as_ref().ok_or("the app's journal is busy")?;
                Err(format!(
                    "app `{name}` has no version on probation (its update is {}, version {} installed); anti-rollback forbids returning to an older committed version: stage a newer bundle instead",
                    r.state.name(),
                    r.installed_version
                ))
            }
        }
    }

    /// A spare process reported ready: it joins at the next boundary it can make.
    pub(super) fn spare_ready(
        &mut self,
        apps: &[App],
        app: usize,
        pid: u32,
        version_text: &str,
        t: Token,
    ) -> bool {
        let Some(epoch) = self.epoch_ns else {
            return false;
        };
        let start_cycle = self.first_join_cycle(epoch);
        let warm = self.updates.as_ref().map_or(1, |u| u.warm_up_cycles);
        let Some(u) = self.updates.as_mut() else {
            return false;
        };
        let Some(k) = u
            .spares
            .iter()
            .position(|s| s.app == app && s.pid == pid && !s.joined)
        else {
            return false;
        };
        u.spares[k].joined = true;
        u.spares[k].conn = Some(t);
        u.spares[k].version_text = version_text.to_string();
        if let Op::Activating { spare, phase, .. } = &mut u.op {
            if *spare == k {
                *phase = Phase::WarmingUp {
                    until_cycle: start_cycle + warm,
                    old_cpu: apps[app]
                        .pid
                        .and_then(|p| CpuReading::take(p, self.shared.block().run.cycle())),
                };
            }
        }
        log::info!(
            "takt run: OTA: app `{}` version {} is ready; it stands by from hyperperiod {start_cycle}",
            apps[app].name, u.spares[k].version
        );
        self.reply(
            t,
            &Response::Join {
                epoch_ns: epoch,
                start_cycle,
            },
            false,
        );
        true
    }

    /// A spare's end-of-run results arrived on connection `t`.
    pub(super) fn spare_finished(&mut self, t: Token, result: &Result<AppRun, String>) -> bool {
        let Some(u) = self.updates.as_mut() else {
            return false;
        };
        match u.spares.iter_mut().find(|s| s.conn == Some(t)) {
            Some(s) => {
                s.result = Some(result.clone());
                true
            }
            None => false,
        }
    }

    /// Whether `pid` is a live process standing by or dismissed (an app process).
    pub(super) fn is_spare_process(&self, pid: u32) -> bool {
        self.updates
            .as_ref()
            .is_some_and(|u| u.spares.iter().any(|s| s.child.is_some() && s.pid == pid))
    }

    /// The app whose spare process `pid` is.
    pub(super) fn spare_app_name(&self, pid: u32) -> Option<String> {
        let u = self.updates.as_ref()?;
        let s = u.spares.iter().find(|s| s.pid == pid)?;
        Some(self.d.apps[s.app].name.clone())
    }

    pub(super) fn spares_gone(&self) -> bool {
        self.updates
            .as_ref()
            .is_none_or(|u| u.spares.iter().all(|s| s.child.is_none()))
    }

    pub(super) fn spare_results(&self) -> Vec<(String, u64, AppRun)> {
        let Some(u) = &self.updates else {
            return Vec::new();
        };
        u.spares
            .iter()
            .filter_map(|s| match &s.result {
                Some(Ok(r)) if !r.tasks.is_empty() => {
                    Some((self.d.apps[s.app].name.clone(), s.version, r.clone()))
                }
                _ => None,
            })
            .collect()
    }

    pub(super) fn reap_spares(&mut self) {
        let grace_ns = DISMISS_GRACE_NS + self.plan.hyperperiod_ns.saturating_mul(3);
        let Some(u) = self.updates.as_mut() else {
            return;
        };
        let now = monotonic_now_ns();
        for s in &mut u.spares {
            // A dismissed process that does not end (hung, stopped, or its dismissal never
            // reached it) is killed: it is tracked until reaped, never left behind.
            if let (Some(c), Some(at)) = (s.child.as_mut(), s.dismissed_ns) {
                if now > at.saturating_add(grace_ns) {
                    log::warn!(
                        "takt run: OTA: app `{}` version {} (pid {}) was dismissed {} ago and has not ended; killing it",
                        self.d.apps[s.app].name,
                        s.version,
                        s.pid,
                        format_ns(now - at)
                    );
                    let _ = c.kill();
                    s.dismissed_ns = Some(now); // one kill per grace; the exit is reaped next
                }
            }
        }
        for s in &mut u.spares {
            let status = match s.child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(st))) => st,
                _ => continue,
            };
            s.child = None;
            s.exit = Some(status);
            if let Some(t) = s.conn.take() {
                self.conns.remove(&t);
            }
            if !s.expected_exit && !status.success() {
                log::error!(
                    "takt run: OTA: app `{}` version {} (pid {}) ended: {status}",
                    self.d.apps[s.app].name,
                    s.version,
                    s.pid
                );
            }
        }
        u.next_dismissal(&self.shared.block().run);
    }

    /// Kills every spare process still alive long after the run's end (see `timers`).
    pub(super) fn kill_spares(&mut self) {
        let Some(u) = self.updates.as_mut() else {
            return;
        };
        for s in &mut u.spares {
            if let Some(c) = s.child.as_mut() {
                log::warn!(
                    "takt run: OTA: app `{}` version {} (pid {}) did not end after the run; killing it",
                    self.d.apps[s.app].name, s.version, s.pid
                );
                let _ = c.kill();
            }
        }
    }

    /// The app's current process ended while an update concerns it: the update decides
    /// what follows, not the restart policy. Returns whether it did.
    pub(super) fn owner_ended_in_update(&mut self, i: usize, status: ExitStatus) -> bool {
        let Some(u) = self.updates.as_ref() else {
            return false;
        };
        match &u.op {
            Op::Probation { app, .. } if *app == i => {
                // Probation rule 7: a kill from outside ends the probation without blame.
                if let Verdict::RollBack { why, bad } =
                    probation::process_ended(Some(status), "on probation")
                {
                    self.start_rollback(why, bad);
                }
                true
            }
            Op::RollingBack { app, .. } if *app == i => true,
            _ => false,
        }
    }

    /// Requests the handover back to the replaced version (standing by) at the next
    /// boundary; `bad`: the version is to blame and is marked bad once it is rolled back.
    fn start_rollback(&mut self, why: String, bad: bool) {
        let Some(u) = self.updates.as_mut() else {
            return;
        };
        let Op::Probation {
            app, old, version, ..
        } = u.op
        else {
            return;
        };
        if u.spares[old].child.is_none() {
            // Its standby died: nothing to hand over to. The tick rolls back without it
            // (`roll_back_without_standby`).
            log::error!(
                "takt run: OTA: app `{}` version {version} failed probation ({why}); its standby has ended, so the installed version is restarted",
                self.d.apps[app].name
            );
            u.op = Op::RollingBack {
                app,
                old,
                version,
                serial: 0,
                why,
                bad,
            };
            return;
        }
        let owner = u.spares[old].incarnation;
        match self
            .shared
            .block()
            .run
            .request_handover(app, owner, u64::MAX)
        {
            Ok(h) => {
                log::error!(
                    "takt run: OTA: app `{}` version {version} failed probation ({why}); rolling back at the next boundary",
                    self.d.apps[app].name
                );
                u.op = Op::RollingBack {
                    app,
                    old,
                    version,
                    serial: h.serial,
                    why,
                    bad,
                };
            }
            Err(e) => {
                log::error!(
                    "takt run: OTA: cannot roll app `{}` back: {e:?} (the run is stopping); the journal reverts at the next start",
                    self.d.apps[app].name
                );
            }
        }
    }

    /// Rolls back although the installed version's standby process has ended (#12.4): the
    /// app record returns to the installed version (without a process), the candidate is
    /// dismissed at the next boundary (handed over to the incarnation the restart gets, or
    /// killed when no handover can be requested), the journal rolls back, and the app's
    /// restart policy decides, as for any process of the app that ended, whether the
    /// installed version is restarted or the failure escalates. Never an app record that
    /// says running without a process.
    fn roll_back_without_standby(
        &mut self,
        apps: &mut [App],
        app: usize,
        k: usize,
        version: u64,
        why: String,
        bad: bool,
    ) {
        let run = &self.shared.block().run;
        // A handover to the dead standby may still be pending: withdraw it.
        let _ = run.cancel_handover();
        let Some(u) = self.updates.as_mut() else {
            return;
        };
        let exit = u.spares[k].exit;
        swap_owner(&mut apps[app], &mut u.spares[k]);
        // Now apps[app] is the installed version without a process, spares[k] the candidate.
        let restart_incarnation = apps[app].next_incarnation;
        u.spares[k].expected_exit = true;
        match run.request_handover(app, restart_incarnation, u64::MAX) {
            Ok(_) => u.dismiss(run, k),
            Err(_) => {
                if let Some(c) = u.spares[k].child.as_mut() {
                    let _ = c.kill();
                }
            }
        }
        let _ = u.transition(app, |j| {
            if bad {
                j.roll_back()
            } else {
                j.roll_back_blameless()
            }
        });
        u.kill_point("rolled-back");
        let status = exit.unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            ExitStatus::from_raw(libc::SIGKILL)
        });
        let msg = format!(
            "app `{}` version {version} rolled back ({why}); {}; version {}'s standby had ended ({status}), so the app's restart policy decides whether it is restarted",
            apps[app].name,
            if bad { "marked bad" } else { "not marked bad: the platform, not the version, failed" },
            apps[app].ota_version
        );
        log::warn!("takt run: OTA: {msg}");
        u.last_result[app] = Some(msg);
        u.op = Op::Idle;
        self.ended(apps, app, status);
    }

    /// Withdraws an activation before its switch: the standing-by process is dismissed
    /// and, when the version did nothing wrong, it stays staged.
    fn abort_activation(&mut self, why: String) {
        self.end_activation(why, false);
    }

    /// Fails an activation because the new version misbehaved before its switch: its
    /// process is ended and the version marked bad.
    fn fail_activation(&mut self, why: String) {
        self.end_activation(why, true);
    }

    fn end_activation(&mut self, why: String, bad: bool) {
        let Some(u) = self.updates.as_mut() else {
            return;
        };
        let Op::Activating {
            app,
            spare,
            version,
            conn,
            ref phase,
            ..
        } = u.op
        else {
            return;
        };
        if let Phase::Switching { .. } = phase {
            if !self.shared.block().run.cancel_handover() {
                return; // decided meanwhile: the switch stands, the tick sees it
            }
        }
        u.dismiss(&self.shared.block().run, spare);
        let s = &mut u.spares[spare];
        if let Some(c) = &mut s.child {
            // A joined process leaves its walk by the dismissal; a bad one is ended.
            if bad || !s.joined {
                let _ = c.kill();
            }
        }
        let msg = if bad {
            let _ = u.transition(app, |j| j.roll_back());
            u.kill_point("rolled-back");
            format!("version {version} failed before its switch ({why}); marked bad")
        } else {
            let _ = u.transition(app, |j| j.cancel_activation());
            format!("activation of version {version} withdrawn ({why}); it stays staged")
        };
        u.last_result[app] = Some(msg.clone());
        u.op = Op::Idle;
        log::warn!("takt run: OTA: app `{}`: {msg}", self.d.apps[app].name);
        if let Some(t) = conn {
            self.reply(t, &Response::Refused(msg), true);
        }
    }

    /// Advances the update in flight; called on every turn of the event loop.
    pub(super) fn update_tick(&mut self, apps: &mut [App]) {
        let Some(u) = self.updates.as_ref() else {
            return;
        };
        let now = monotonic_now_ns();
        let cycle = self.shared.block().run.cycle();
        match u.op {
            Op::Idle => {}
            Op::Verifying { .. } => self.verifying(apps, now),
            Op::Staging { .. } => self.staging(now),
            Op::Activating { .. } => self.activating(apps, now, cycle),
            Op::Probation { .. } => self.probation(apps, now, cycle),
            Op::RollingBack { .. } => self.rolling_back(apps, now),
        }
    }
}

/// The CPU time app `app`'s tasks may use in one hyperperiod of the mode that gives them the
/// most: the sum of their budgets times their jobs per hyperperiod.
fn budget_per_hyperperiod(d: &Deployment, app: usize) -> u64 {
    per_mode(d, app, |t, jobs| t.budget_ns.saturating_mul(jobs))
        .max()
        .unwrap_or(0)
}

/// The fewest jobs app `app` runs in one hyperperiod of any mode that releases any of its
/// tasks (0 when no mode does): what one hyperperiod of probation shows at least.
fn fewest_jobs_per_hyperperiod(d: &Deployment, app: usize) -> u64 {
    per_mode(d, app, |_, jobs| jobs)
        .filter(|&n| n > 0)
        .min()
        .unwrap_or(0)
}

/// Exchanges which process is the app's owner: the app record takes the spare's process
/// and the spare the app's.
fn swap_owner(a: &mut App, s: &mut Spare) {
    let a_pid = a.pid.unwrap_or(0);
    std::mem::swap(&mut a.child, &mut s.child);
    a.pid = a.child.as_ref().map(Child::id);
    s.pid = s.child.as_ref().map_or(a_pid, Child::id);
    std::mem::swap(&mut a.incarnation, &mut s.incarnation);
    std::mem::swap(&mut a.ota_version, &mut s.version);
    std::mem::swap(&mut a.version, &mut s.version_text);
    std::mem::swap(&mut a.exe, &mut s.exe);
    std::mem::swap(&mut a.conn, &mut s.conn);
    std::mem::swap(&mut a.result, &mut s.result);
    s.joined = true;
    a.joined = true;
}

/// A live update runs inside the running tables: every task keeps its period, offset,
/// LET and core, and its budget may shrink but not grow past the window it has.
fn fits_running_tables(d: &Deployment, b: &Bundle) -> Result<(), String> {
    for t in &b.fragment.tasks {
        let Some(id) = d.task_id(&t.name) else {
            continue; // check_stage already refused unknown tasks
        };
        let run = &d.tasks[id];
        if t.period_ns != run.period_ns
            || t.offset_ns != run.offset_ns
            || t.let_ns != run.let_ns
            || t.core != run.core as u64
        {
            return Err(format!(
                "task `{}` changes its period, offset, LET or core; a live update runs inside the running schedule's windows, so only the budget may change (and only shrink)",
                t.name
            ));
        }
        if t.budget_ns > run.budget_ns {
            return Err(format!(
                "task `{}` asks a budget of {}, but its window in the running schedule is {}; a live update runs inside the running windows",
                t.name,
                format_ns(t.budget_ns),
                format_ns(run.budget_ns)
            ));
        }
    }
    Ok(())
}

/// Per mode, the sum over app `app`'s tasks of `f(task, its jobs per hyperperiod)`.
fn per_mode<'d>(
    d: &'d Deployment,
    app: usize,
    f: impl Fn(&crate::manifest::TaskSpec, u64) -> u64 + Copy + 'd,
) -> impl Iterator<Item = u64> + 'd {
    let h = d.hyperperiod_ns.max(1);
    d.modes.iter().map(move |m| {
        m.tasks
            .iter()
            .filter_map(|&t| d.tasks.get(t))
            .filter(|t| t.app == app)
            .map(|t| f(t, h / t.period_ns.max(1)))
            .fold(0u64, u64::saturating_add)
    })
}

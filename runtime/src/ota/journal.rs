//! The journal of one app's updates: which slot is installed, which version, which
//! transition is in flight, and which versions are bad.
//!
//! Owns the state machine drawn in [`ota`](super) and its durable record. Every
//! transition is one atomic replace of `<app>/journal` (write a temporary file, fsync,
//! rename, fsync the directory), so after a power cut the record is the one before or
//! the one after a transition, never a mix. [`Journal::open`] recovers an interrupted
//! transition. It must never write the slot that runs, and never start or stop processes.
//!
//! Transitions (numbers as in the module diagram of [`ota`](super)):
//! 1. `stage`: from a rest state (`Idle`, `Committed`, `RolledBack`) unpack into the
//!    inactive slot, then record `Staged`. From `Staged` (an update staged and never
//!    activated: a newer bundle replaces it) the record first returns to `Idle` (1b), so a
//!    power cut during the new unpack leaves `Idle` with an incomplete inactive slot, never
//!    `Staged` naming the old version over the new version's half-written files.
//! 2. `activate`: `Staged` → `Activating` (the supervisor starts the switch).
//! 3. `switched`: `Activating` → `Probation` (the new slot runs).
//! 4. `commit`: `Probation` → `Committed`; installed slot and version move forward.
//! 5. `roll_back`: `Activating` or `Probation` → `RolledBack`, the version marked bad.
//!
//! Recovery at [`Journal::open`]:
//! - R1. `Staged` whose slot is not complete → `Idle`.
//! - R2. `Activating` → `Staged`: the switch never finished, the installed slot still runs.
//! - R3. `Probation` → `RolledBack` (not marked bad: the power cut was not its fault);
//!   a version that was not committed never survives a restart.
//! - R4. The slot that should run is not intact (a missing file, a bad or unauthentic
//!   stamp): the other slot, when it is complete, authentic and not newer than the
//!   anti-rollback counter, becomes the installed one (`RolledBack`, not marked bad), as
//!   RAUC falls back. Neither slot can run: a clear error.
//! - R5. The journal is missing or corrupt but the anti-rollback record is not: the
//!   journal is rebuilt from the newest intact slot not newer than the counter; a corrupt
//!   journal is kept aside as `journal.corrupt`.
//!
//! # The anti-rollback counter, kept twice
//!
//! The counter (the highest committed version, [`JournalRecord::floor`]) lives in the
//! journal and in the independent record of [`counter`](super::counter). At open the
//! larger of the two wins, the disagreement is reported ([`Journal::notes`]) and the
//! smaller copy is rewritten. The loss of both on a state directory whose slots were
//! written is a refusal ([`JournalError::CounterLost`]), never a reset to 0.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::bundle::Entry;
use super::counter;
use super::slots::{self, Slot, SlotError};
use super::storage::{replace_atomically, Storage};

/// Where an app's update stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateState {
    Idle,
    Staged { slot: Slot, version: u64 },
    Activating { slot: Slot, version: u64 },
    Probation { slot: Slot, version: u64 },
    Committed { slot: Slot, version: u64 },
    RolledBack { slot: Slot, version: u64, bad: bool },
}

impl UpdateState {
    /// Whether no transition is in flight, so the inactive slot may be written.
    pub fn is_rest(&self) -> bool {
        matches!(
            self,
            UpdateState::Idle | UpdateState::Committed { .. } | UpdateState::RolledBack { .. }
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            UpdateState::Idle => "idle",
            UpdateState::Staged { .. } => "staged",
            UpdateState::Activating { .. } => "activating",
            UpdateState::Probation { .. } => "probation",
            UpdateState::Committed { .. } => "committed",
            UpdateState::RolledBack { .. } => "rolled-back",
        }
    }
}

/// The durable record of one app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRecord {
    pub app: String,
    /// Incremented by every transition, for ordering in traces and status.
    pub seq: u64,
    /// The committed version: the anti-rollback counter. Never decreases.
    pub installed_version: u64,
    pub installed_slot: Slot,
    /// Versions that failed probation, newest last, at most [`MAX_BAD_VERSIONS`].
    pub bad_versions: Vec<u64>,
    pub state: UpdateState,
    /// The anti-rollback counter: the highest version ever committed. At least
    /// `installed_version`, larger when R4 fell back to an older slot. Never decreases.
    pub floor: u64,
}

/// The record as format 1 wrote it (no separate counter), read for compatibility.
#[derive(Deserialize)]
struct JournalRecordV1 {
    app: String,
    seq: u64,
    installed_version: u64,
    installed_slot: Slot,
    bad_versions: Vec<u64>,
    state: UpdateState,
}

impl JournalRecord {
    /// The record of an app with no trace in the state directory (a factory state): the
    /// manifest's own code runs as version 0 and the first update goes to slot B.
    fn factory(app: &str) -> JournalRecord {
        JournalRecord {
            app: app.to_string(),
            seq: 0,
            installed_version: 0,
            installed_slot: Slot::A,
            bad_versions: Vec::new(),
            state: UpdateState::Idle,
            floor: 0,
        }
    }

    /// The version a bundle must exceed: the larger of the counter and the installed
    /// version (they agree except after a fallback).
    pub fn rollback_floor(&self) -> u64 {
        self.floor.max(self.installed_version)
    }

    /// The slot and version that run: the probation slot during probation, else the
    /// installed one.
    pub fn running(&self) -> (Slot, u64) {
        match self.state {
            UpdateState::Probation { slot, version } => (slot, version),
            _ => (self.installed_slot, self.installed_version),
        }
    }
}

/// Most bad versions remembered; older ones are below the installed version anyway once
/// any newer version commits.
pub const MAX_BAD_VERSIONS: usize = 32;
const MAGIC: [u8; 8] = *b"TAKTJNL2";
const MAGIC_V1: [u8; 8] = *b"TAKTJNL1";
const MAX_JOURNAL_BYTES: u64 = 64 << 10;

/// Why a journal operation failed.
#[derive(Debug)]
pub enum JournalError {
    Io {
        path: String,
        error: io::Error,
    },
    Corrupt {
        path: String,
        reason: String,
    },
    NotInstalled {
        app: String,
    },
    AlreadyInstalled {
        app: String,
    },
    /// The transition is not allowed from the current state.
    WrongState {
        app: String,
        transition: &'static str,
        state: &'static str,
    },
    NotNewer {
        app: String,
        version: u64,
        installed_version: u64,
    },
    KnownBad {
        app: String,
        version: u64,
    },
    Slot(SlotError),
    /// Both copies of the anti-rollback counter are gone on a directory whose slots were
    /// written: starting at 0 would make every older signed bundle installable again.
    CounterLost {
        app: String,
        reason: String,
    },
    /// Neither slot holds a version that may run.
    NoRunnableSlot {
        app: String,
        reason: String,
    },
    Counter(counter::CounterError),
    /// The state directory is read-only and the anti-rollback counter cannot be read and
    /// cross-checked (a copy is missing or damaged and cannot be repaired there).
    ReadOnlyUnchecked {
        app: String,
        reason: String,
    },
    /// A transition on a journal opened read-only ([`Journal::open_read_only`]).
    ReadOnly {
        app: String,
        cause: String,
    },
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use JournalError as E;
        match self {
            E::Io { path, error } => write!(f, "{path}: {error}"),
            E::Corrupt { path, reason } => write!(f, "{path}: corrupt journal: {reason}"),
            E::NotInstalled { app } => write!(f, "app `{app}` has no journal; install it first"),
            E::AlreadyInstalled { app } => write!(f, "app `{app}` already has a journal"),
            E::WrongState {
                app,
                transition,
                state,
            } => write!(f, "app `{app}`: cannot {transition} while the update is {state}"),
            E::NotNewer {
                app,
                version,
                installed_version,
            } => write!(
                f,
                "anti-rollback: app `{app}` version {version} is not newer than the installed version {installed_version}"
            ),
            E::KnownBad { app, version } => {
                write!(f, "app `{app}` version {version} is marked bad")
            }
            E::Slot(e) => write!(f, "{e}"),
            E::CounterLost { app, reason } => write!(
                f,
                "app `{app}`: the anti-rollback counter is lost ({reason}) but the state directory holds slots of the app; refusing to start from version 0, which would make every older signed bundle installable again. Restore `{app}/journal` or `{}/{app}` from a backup, or reinstall the device's OTA state deliberately",
                counter::DIR
            ),
            E::NoRunnableSlot { app, reason } => write!(
                f,
                "app `{app}`: no slot can run: {reason}; refusing to start a version that is not intact or older than the anti-rollback counter"
            ),
            E::Counter(e) => write!(f, "{e}"),
            E::ReadOnlyUnchecked { app, reason } => write!(
                f,
                "app `{app}`: the OTA state directory is read-only and the anti-rollback counter cannot be read and cross-checked ({reason}); refusing to start, since a copy that cannot be repaired cannot be trusted to hold the newest version. Repair the state directory on a writable disk"
            ),
            E::ReadOnly { app, cause } => write!(
                f,
                "app `{app}`: updates are disabled: {cause}"
            ),
        }
    }
}

impl std::error::Error for JournalError {}

impl From<SlotError> for JournalError {
    fn from(e: SlotError) -> Self {
        JournalError::Slot(e)
    }
}

/// What [`Journal::open`] did to an interrupted transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    Nothing,
    /// R1: the staged slot was incomplete; back to `Idle`.
    DroppedIncompleteStage,
    /// R2: the switch never finished; back to `Staged`.
    RevertedActivation,
    /// R3: the uncommitted probation version was rolled back.
    RevertedProbation,
    /// R4: the slot that should run was not intact; the other slot runs.
    FellBack,
}

/// One app's journal on a [`Storage`].
#[derive(Debug)]
pub struct Journal<S: Storage> {
    storage: S,
    record: JournalRecord,
    /// What opening found and repaired (counter disagreement, fallback, rebuilt journal),
    /// one sentence each, for stderr and `takt ota status`.
    notes: Vec<String>,
    /// Why the state directory cannot be written, for a journal opened read-only: no
    /// transition is written, and every transition after opening is refused.
    read_only: Option<String>,
    /// While a read-only journal is being opened, recovery (R2-R4) is applied to the
    /// record in memory only, so the version that runs is the one a writable start
    /// would have chosen.
    in_memory: bool,
}

/// Whether either slot of `app` carries a stamp (something was installed).
fn any_slot_stamped<S: Storage>(storage: &S, app: &str) -> bool {
    slots::has_stamp(storage, app, Slot::A) || slots::has_stamp(storage, app, Slot::B)
}

fn journal_path(app: &str) -> Result<String, JournalError> {
    // The slot directory check also vets the app name as a path component.
    slots::slot_dir(app, Slot::A)?;
    Ok(format!("{app}/journal"))
}

impl<S: Storage> Journal<S> {
    /// First installation of `app`: unpacks `entries` as `version` into slot A and records
    /// it as installed and committed.
    pub fn install(
        mut storage: S,
        app: &str,
        version: u64,
        entries: &[Entry],
    ) -> Result<Self, JournalError> {
        let path = journal_path(app)?;
        if read_record(&storage, &path)?.is_some() {
            return Err(JournalError::AlreadyInstalled {
                app: app.to_string(),
            });
        }
        slots::unpack(&mut storage, app, Slot::A, version, entries)?;
        let mut j = Journal {
            storage,
            record: JournalRecord {
                app: app.to_string(),
                seq: 0,
                installed_version: version,
                installed_slot: Slot::A,
                bad_versions: Vec::new(),
                state: UpdateState::Committed {
                    slot: Slot::A,
                    version,
                },
                floor: version,
            },
            notes: Vec::new(),
            read_only: None,
            in_memory: false,
        };
        j.persist(j.record.clone())?;
        j.write_counter()?;
        Ok(j)
    }

    /// Opens `app`'s journal, first recording the manifest's own code as installed
    /// version 0 when the app has none (nothing is unpacked: version 0 runs the way the
    /// manifest says, and the first update goes to slot B).
    ///
    /// Only a directory with no trace of the app (no journal, no anti-rollback record, no
    /// stamped slot) is taken as a factory state; anything else goes through [`Self::open`]
    /// and its recovery.
    pub fn open_or_factory(mut storage: S, app: &str) -> Result<(Self, Recovery), JournalError> {
        let path = journal_path(app)?;
        // An unreadable journal (too large, an I/O error) is not a missing one: `open`
        // reports or rebuilds it.
        let no_journal = storage
            .read(&path, MAX_JOURNAL_BYTES)
            .is_ok_and(|b| b.is_none());
        let no_counter = matches!(counter::read(&storage, app), Ok(None));
        if no_journal && no_counter && !any_slot_stamped(&storage, app) {
            storage.create_dir(app).map_err(|error| JournalError::Io {
                path: app.to_string(),
                error,
            })?;
            let mut j = Journal {
                storage,
                record: JournalRecord::factory(app),
                notes: Vec::new(),
                read_only: None,
                in_memory: false,
            };
            j.persist(j.record.clone())?;
            storage = j.storage;
        }
        Self::open(storage, app)
    }

    /// Reads `app`'s journal record without recovering or writing anything (`takt ota
    /// status` on a system whose supervisor is not running). `None`: the app has none.
    pub fn peek(storage: &S, app: &str) -> Result<Option<JournalRecord>, JournalError> {
        read_record(storage, &journal_path(app)?)
    }

    pub fn open(mut storage: S, app: &str) -> Result<(Self, Recovery), JournalError> {
        let path = journal_path(app)?;
        // A temporary file is a transition that never got renamed: it never happened.
        let tmp = format!("{path}.tmp");
        storage.remove(&tmp).map_err(|error| JournalError::Io {
            path: tmp.clone(),
            error,
        })?;
        let mut notes = Vec::new();
        let counted = counter::read(&storage, app);
        let record = match read_record(&storage, &path) {
            Ok(Some(record)) => record,
            Ok(None) if matches!(counted, Ok(None)) => {
                if slots::has_stamp(&storage, app, Slot::A)
                    || slots::has_stamp(&storage, app, Slot::B)
                {
                    return Err(JournalError::CounterLost {
                        app: app.to_string(),
                        reason: format!("both `{path}` and `{}` are missing", counter::path(app)?),
                    });
                }
                return Err(JournalError::NotInstalled {
                    app: app.to_string(),
                });
            }
            // R5: the journal is gone or unreadable; the counter decides what may run.
            Ok(None) | Err(JournalError::Corrupt { .. }) => {
                let why = match read_record(&storage, &path) {
                    Err(e) => e.to_string(),
                    _ => format!("{path} is missing"),
                };
                let floor = match &counted {
                    Ok(Some(v)) => *v,
                    Ok(None) => {
                        return Err(JournalError::CounterLost {
                            app: app.to_string(),
                            reason: format!("{why}, and `{}` is missing", counter::path(app)?),
                        })
                    }
                    Err(e) => {
                        return Err(JournalError::CounterLost {
                            app: app.to_string(),
                            reason: format!("{why}, and {e}"),
                        })
                    }
                };
                let (record, note) = rebuild(&mut storage, app, &path, floor, &why)?;
                notes.push(note);
                record
            }
            Err(e) => return Err(e),
        };
        let mut j = Journal {
            storage,
            record,
            notes,
            read_only: None,
            in_memory: false,
        };
        j.reconcile_counter(counted)?;
        let mut recovery = j.recover()?;
        if j.fall_back_if_needed()? {
            recovery = Recovery::FellBack;
        }
        Ok((j, recovery))
    }

    /// Opens `app`'s journal on a state directory that cannot be written (`cause` says
    /// why), writing nothing: the installed, verified version runs and updates are off.
    ///
    /// What a writable start would write is decided the same way but kept in memory: an
    /// interrupted transition is recovered (R1-R3) and a damaged slot falls back to the
    /// other intact one (R4), each reported as not recorded. Anti-rollback is not weakened:
    /// both copies of the counter must be readable and are cross-checked (the larger one
    /// holds); a missing or damaged copy, which a writable start would repair or rebuild
    /// from (R5), is a refusal here ([`JournalError::ReadOnlyUnchecked`]). A directory
    /// with no trace of the app runs the manifest's own code (version 0), as a factory
    /// state does.
    pub fn open_read_only(
        storage: S,
        app: &str,
        cause: &str,
    ) -> Result<(Self, Recovery), JournalError> {
        let path = journal_path(app)?;
        let cpath = counter::path(app)?;
        let unchecked = |reason: String| JournalError::ReadOnlyUnchecked {
            app: app.to_string(),
            reason,
        };
        let counted = counter::read(&storage, app);
        let mut notes = Vec::new();
        let mut record = match read_record(&storage, &path) {
            Ok(Some(record)) => record,
            Ok(None) if matches!(counted, Ok(None)) && !any_slot_stamped(&storage, app) => {
                JournalRecord::factory(app)
            }
            Ok(None) => return Err(unchecked(format!("`{path}` is missing"))),
            Err(e) => return Err(unchecked(e.to_string())),
        };
        let journal_floor = record.rollback_floor();
        match counted {
            Ok(Some(c)) if c == journal_floor => {}
            Ok(Some(c)) => {
                let holds = c.max(journal_floor);
                notes.push(format!(
                    "anti-rollback: the journal of `{app}` says version {journal_floor}, `{cpath}` says {c}; the larger, {holds}, holds (not repaired: the state directory is read-only)"
                ));
                record.floor = holds;
            }
            // Nothing was ever committed: the manifest's own code runs, and no counter
            // copy protects anything yet.
            Ok(None) if journal_floor == 0 => {}
            Ok(None) => return Err(unchecked(format!("`{cpath}` is missing"))),
            Err(e) => return Err(unchecked(e.to_string())),
        }
        let mut j = Journal {
            storage,
            record,
            notes,
            read_only: Some(cause.to_string()),
            in_memory: true,
        };
        let before = j.record.state;
        let mut recovery = j.recover()?;
        if j.fall_back_if_needed()? {
            recovery = Recovery::FellBack;
        }
        j.in_memory = false;
        if recovery != Recovery::Nothing {
            j.notes.push(format!(
                "app `{app}`: the journal says {}; recovered to {} in memory only (not recorded: the state directory is read-only; a start on a writable one recovers it again)",
                before.name(),
                j.record.state.name()
            ));
        }
        Ok((j, recovery))
    }

    /// Why the journal cannot be written, when it was opened read-only.
    pub fn read_only(&self) -> Option<&str> {
        self.read_only.as_deref()
    }

    /// What opening found and repaired, one sentence each (empty when all was well).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Takes the larger of the journal's and the record's counter and rewrites the other.
    fn reconcile_counter(
        &mut self,
        counted: Result<Option<u64>, counter::CounterError>,
    ) -> Result<(), JournalError> {
        let app = self.record.app.clone();
        let journal_floor = self.record.rollback_floor();
        let cpath = counter::path(&app)?;
        match counted {
            Ok(Some(c)) if c == journal_floor => return Ok(()),
            Ok(Some(c)) if c > journal_floor => {
                self.notes.push(format!(
                    "anti-rollback: the journal of `{app}` says version {journal_floor}, `{cpath}` says {c}; the larger, {c}, holds (the journal was replaced by an older copy?)"
                ));
                let mut next = self.record.clone();
                next.floor = c;
                self.persist(next)?;
                return Ok(());
            }
            Ok(Some(c)) => self.notes.push(format!(
                "anti-rollback: `{cpath}` says version {c}, the journal of `{app}` says {journal_floor}; the larger, {journal_floor}, holds and `{cpath}` is rewritten"
            )),
            Ok(None) if journal_floor == 0 => {}
            Ok(None) => self.notes.push(format!(
                "anti-rollback: `{cpath}` is missing; rewritten from the journal of `{app}` (version {journal_floor})"
            )),
            Err(e) => self.notes.push(format!(
                "anti-rollback: {e}; rewritten from the journal of `{app}` (version {journal_floor})"
            )),
        }
        self.write_counter()
    }

    fn write_counter(&mut self) -> Result<(), JournalError> {
        self.writable()?;
        let floor = self.record.rollback_floor();
        counter::write(&mut self.storage, &self.record.app, floor).map_err(JournalError::Counter)
    }

    /// R4: when the slot that should run is not intact, the other complete slot (not
    /// newer than the counter, not marked bad) becomes the installed one.
    fn fall_back_if_needed(&mut self) -> Result<bool, JournalError> {
        let app = self.record.app.clone();
        let (slot, version) = self.record.running();
        if version == 0 {
            return Ok(false); // the manifest's own code runs; no slot to check
        }
        let problem = match slots::verify(&self.storage, &app, slot) {
            Ok(stamp) if stamp.version == version => return Ok(false),
            Ok(stamp) => format!(
                "slot {slot} holds version {}, the journal says {version}",
                stamp.version
            ),
            Err(e) => format!("slot {slot}: {e}"),
        };
        let other = slot.other();
        let floor = self.record.rollback_floor();
        let fallback = match slots::verify(&self.storage, &app, other) {
            Ok(stamp) if stamp.version > floor => Err(format!(
                "slot {other} holds version {}, newer than the anti-rollback counter {floor} (never committed)",
                stamp.version
            )),
            Ok(stamp) if self.record.bad_versions.contains(&stamp.version) => Err(format!(
                "slot {other} holds version {}, which is marked bad",
                stamp.version
            )),
            Ok(stamp) if stamp.version == 0 => Err(format!("slot {other} holds version 0")),
            Ok(stamp) => Ok(stamp.version),
            Err(e) => Err(format!("slot {other}: {e}")),
        };
        let v = fallback.map_err(|other_problem| JournalError::NoRunnableSlot {
            app: app.clone(),
            reason: format!("{problem}; and {other_problem}"),
        })?;
        let mut next = self.record.clone();
        next.floor = floor;
        next.installed_slot = other;
        next.installed_version = v;
        next.state = UpdateState::RolledBack {
            slot,
            version,
            bad: false,
        };
        self.persist(next)?;
        self.notes.push(format!(
            "app `{app}`: version {version} in slot {slot} cannot run ({problem}); fell back to version {v} in slot {other}; the anti-rollback counter stays at {floor}, the next update is written into slot {slot}"
        ));
        Ok(true)
    }

    fn recover(&mut self) -> Result<Recovery, JournalError> {
        let app = self.record.app.clone();
        match self.record.state {
            UpdateState::Staged { slot, version } => {
                let complete = slots::verify(&self.storage, &app, slot)
                    .is_ok_and(|stamp| stamp.version == version);
                if complete {
                    Ok(Recovery::Nothing)
                } else {
                    self.transition(UpdateState::Idle)?;
                    Ok(Recovery::DroppedIncompleteStage)
                }
            }
            UpdateState::Activating { slot, version } => {
                self.transition(UpdateState::Staged { slot, version })?;
                Ok(Recovery::RevertedActivation)
            }
            UpdateState::Probation { slot, version } => {
                self.transition(UpdateState::RolledBack {
                    slot,
                    version,
                    bad: false,
                })?;
                Ok(Recovery::RevertedProbation)
            }
            _ => Ok(Recovery::Nothing),
        }
    }

    pub fn record(&self) -> &JournalRecord {
        &self.record
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Gives the storage back (tests cut power on it and open the journal again).
    pub fn into_storage(self) -> S {
        self.storage
    }

    /// Transition 1: unpacks a verified bundle's entries as `version` into the inactive slot.
    pub fn stage(&mut self, version: u64, entries: &[Entry]) -> Result<Slot, JournalError> {
        self.writable()?;
        let restage = matches!(self.record.state, UpdateState::Staged { .. });
        self.require(self.record.state.is_rest() || restage, "stage")?;
        let app = self.record.app.clone();
        if version <= self.record.rollback_floor() {
            return Err(JournalError::NotNewer {
                app,
                version,
                installed_version: self.record.rollback_floor(),
            });
        }
        if self.record.bad_versions.contains(&version) {
            return Err(JournalError::KnownBad { app, version });
        }
        if restage {
            // Transition 1b: the staged, never activated update is withdrawn.
            self.transition(UpdateState::Idle)?;
        }
        let slot = self.record.installed_slot.other();
        slots::unpack(&mut self.storage, &app, slot, version, entries)?;
        self.transition(UpdateState::Staged { slot, version })?;
        Ok(slot)
    }

    /// Transition 2: the supervisor begins switching to the staged slot.
    pub fn activate(&mut self) -> Result<(), JournalError> {
        match self.record.state {
            UpdateState::Staged { slot, version } => {
                self.transition(UpdateState::Activating { slot, version })
            }
            _ => self.require(false, "activate"),
        }
    }

    /// Transition 3: the new slot runs; probation starts.
    pub fn switched(&mut self) -> Result<(), JournalError> {
        match self.record.state {
            UpdateState::Activating { slot, version } => {
                self.transition(UpdateState::Probation { slot, version })
            }
            _ => self.require(false, "finish switching"),
        }
    }

    /// The switch was withdrawn before it happened (the new version never ran, e.g. no
    /// update-safe mode came in time): `Activating` → `Staged`, as recovery R2 does.
    pub fn cancel_activation(&mut self) -> Result<(), JournalError> {
        match self.record.state {
            UpdateState::Activating { slot, version } => {
                self.transition(UpdateState::Staged { slot, version })
            }
            _ => self.require(false, "cancel the activation"),
        }
    }

    /// Transition 4: probation passed; the new version becomes the installed one.
    pub fn commit(&mut self) -> Result<(), JournalError> {
        match self.record.state {
            UpdateState::Probation { slot, version } => {
                let mut next = self.record.clone();
                next.installed_slot = slot;
                next.installed_version = version;
                next.floor = next.floor.max(version);
                next.state = UpdateState::Committed { slot, version };
                // The journal first: a cut before the record is written leaves a journal
                // ahead of the record, which the next open repairs (the larger wins).
                self.persist(next)?;
                self.write_counter()
            }
            _ => self.require(false, "commit"),
        }
    }

    /// Transition 5: the new version failed; the installed slot runs again and the
    /// version is marked bad so it is never activated again.
    pub fn roll_back(&mut self) -> Result<(), JournalError> {
        match self.record.state {
            UpdateState::Activating { slot, version }
            | UpdateState::Probation { slot, version } => {
                let mut next = self.record.clone();
                next.bad_versions.push(version);
                if next.bad_versions.len() > MAX_BAD_VERSIONS {
                    next.bad_versions.remove(0);
                }
                next.state = UpdateState::RolledBack {
                    slot,
                    version,
                    bad: true,
                };
                self.persist(next)
            }
            _ => self.require(false, "roll back"),
        }
    }

    /// Transition 5 without blame: the version was rolled back for something that was not
    /// its doing (the platform stalled the whole deployment during its probation), so it is
    /// not marked bad and may be activated again, as after recovery R3.
    pub fn roll_back_blameless(&mut self) -> Result<(), JournalError> {
        match self.record.state {
            UpdateState::Probation { slot, version } => self.transition(UpdateState::RolledBack {
                slot,
                version,
                bad: false,
            }),
            _ => self.require(false, "roll back"),
        }
    }

    /// Refuses every write of a journal opened read-only (its slots included).
    fn writable(&self) -> Result<(), JournalError> {
        match &self.read_only {
            Some(cause) => Err(JournalError::ReadOnly {
                app: self.record.app.clone(),
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    fn require(&self, ok: bool, transition: &'static str) -> Result<(), JournalError> {
        if ok {
            Ok(())
        } else {
            Err(JournalError::WrongState {
                app: self.record.app.clone(),
                transition,
                state: self.record.state.name(),
            })
        }
    }

    fn transition(&mut self, state: UpdateState) -> Result<(), JournalError> {
        let mut next = self.record.clone();
        next.state = state;
        self.persist(next)
    }

    /// Writes `next` atomically and adopts it only once it is durable.
    fn persist(&mut self, mut next: JournalRecord) -> Result<(), JournalError> {
        next.seq = self.record.seq + 1;
        if self.read_only.is_some() {
            if !self.in_memory {
                self.writable()?;
            }
            self.record = next;
            return Ok(());
        }
        let path = journal_path(&next.app)?;
        let bytes = encode_record(&next, &path)?;
        replace_atomically(&mut self.storage, &path, &bytes)
            .map_err(|error| JournalError::Io { path, error })?;
        self.record = next;
        Ok(())
    }
}

fn encode_record(r: &JournalRecord, path: &str) -> Result<Vec<u8>, JournalError> {
    let body = bincode::serde::encode_to_vec(r, bincode::config::standard()).map_err(|e| {
        JournalError::Corrupt {
            path: path.to_string(),
            reason: format!("cannot encode: {e}"),
        }
    })?;
    let mut out = Vec::with_capacity(body.len() + 8 + 4 + 32);
    out.extend_from_slice(&MAGIC);
    // The record is a few hundred bytes; MAX_JOURNAL_BYTES bounds it when read back.
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&Sha256::digest(&body));
    Ok(out)
}

fn read_record(s: &dyn Storage, path: &str) -> Result<Option<JournalRecord>, JournalError> {
    let corrupt = |reason: &str| JournalError::Corrupt {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    let Some(bytes) = s.read(path, MAX_JOURNAL_BYTES).map_err(|error| {
        if error.kind() == io::ErrorKind::InvalidData {
            corrupt(&error.to_string())
        } else {
            JournalError::Io {
                path: path.to_string(),
                error,
            }
        }
    })?
    else {
        return Ok(None);
    };
    let v1 = bytes.get(..8) == Some(&MAGIC_V1[..]);
    if bytes.len() < 8 + 4 + 32 || !(bytes[..8] == MAGIC || v1) {
        return Err(corrupt("bad magic or too short"));
    }
    let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    if bytes.len() != 12 + len + 32 {
        return Err(corrupt("length does not match the file size"));
    }
    let body = &bytes[12..12 + len];
    if Sha256::digest(body).as_slice() != &bytes[12 + len..] {
        return Err(corrupt("checksum mismatch"));
    }
    let config = bincode::config::standard().with_limit::<{ MAX_JOURNAL_BYTES as usize }>();
    let (record, used): (JournalRecord, usize) = if v1 {
        let (r, used): (JournalRecordV1, usize) =
            bincode::serde::decode_from_slice(body, config)
                .map_err(|e| corrupt(&format!("undecodable record: {e}")))?;
        let record = JournalRecord {
            floor: r.installed_version,
            app: r.app,
            seq: r.seq,
            installed_version: r.installed_version,
            installed_slot: r.installed_slot,
            bad_versions: r.bad_versions,
            state: r.state,
        };
        (record, used)
    } else {
        bincode::serde::decode_from_slice(body, config)
            .map_err(|e| corrupt(&format!("undecodable record: {e}")))?
    };
    if used != body.len() {
        return Err(corrupt("bytes left over after the record"));
    }
    Ok(Some(record))
}

/// R5: a journal for `app` from its intact slots, trusting only versions not newer than
/// `floor`; a corrupt journal file is kept aside as `journal.corrupt`, never deleted.
fn rebuild(
    storage: &mut dyn Storage,
    app: &str,
    path: &str,
    floor: u64,
    why: &str,
) -> Result<(JournalRecord, String), JournalError> {
    let mut best: Option<(Slot, u64)> = None;
    let mut problems = Vec::new();
    for slot in [Slot::A, Slot::B] {
        match slots::verify(storage, app, slot) {
            Ok(stamp) if stamp.version > floor => problems.push(format!(
                "slot {slot} holds version {}, newer than the counter {floor}",
                stamp.version
            )),
            Ok(stamp) if best.is_none_or(|(_, v)| stamp.version > v) => {
                best = Some((slot, stamp.version))
            }
            Ok(_) => {}
            Err(SlotError::Incomplete { .. }) => {}
            Err(e) => problems.push(e.to_string()),
        }
    }
    let (installed_slot, installed_version, state) = match best {
        Some((slot, version)) => (slot, version, UpdateState::Committed { slot, version }),
        None if floor == 0 => (Slot::A, 0, UpdateState::Idle),
        None => {
            return Err(JournalError::NoRunnableSlot {
                app: app.to_string(),
                reason: format!(
                    "{why}, and no intact slot holds a version up to the anti-rollback counter {floor}{}",
                    if problems.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", problems.join("; "))
                    }
                ),
            })
        }
    };
    let io = |path: &str| {
        let path = path.to_string();
        move |error| JournalError::Io { path, error }
    };
    if storage
        .list(app)
        .is_ok_and(|names| names.iter().any(|n| n == "journal"))
    {
        let aside = format!("{path}.corrupt");
        storage.rename(path, &aside).map_err(io(&aside))?;
        storage
            .fsync_dir(super::storage::parent(path))
            .map_err(io(&aside))?;
    }
    let record = JournalRecord {
        app: app.to_string(),
        seq: 0,
        installed_version,
        installed_slot,
        bad_versions: Vec::new(),
        state,
        floor,
    };
    let bytes = encode_record(&record, path)?;
    storage.create_dir(app).map_err(io(app))?;
    replace_atomically(storage, path, &bytes).map_err(io(path))?;
    let note = format!(
        "app `{app}`: {why}; the journal was rebuilt from the anti-rollback record (version {floor}) and the intact slots: version {installed_version}{} runs{}",
        if installed_version > 0 { format!(" in slot {installed_slot}") } else { String::new() },
        if problems.is_empty() { String::new() } else { format!(" ({})", problems.join("; ")) }
    );
    Ok((record, note))
}

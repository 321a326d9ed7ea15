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
//!    inactive slot, then record `Staged`.
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

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::bundle::Entry;
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
}

impl JournalRecord {
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
const MAGIC: [u8; 8] = *b"TAKTJNL1";
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
}

/// One app's journal on a [`Storage`].
#[derive(Debug)]
pub struct Journal<S: Storage> {
    storage: S,
    record: JournalRecord,
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
            },
        };
        j.persist(j.record.clone())?;
        Ok(j)
    }

    /// Reads `app`'s journal and recovers an interrupted transition.
    /// Opens `app`'s journal, first recording the manifest's own code as installed
    /// version 0 when the app has none (nothing is unpacked: version 0 runs the way the
    /// manifest says, and the first update goes to slot B).
    pub fn open_or_factory(mut storage: S, app: &str) -> Result<(Self, Recovery), JournalError> {
        let path = journal_path(app)?;
        if read_record(&storage, &path)?.is_none() {
            storage.create_dir(app).map_err(|error| JournalError::Io {
                path: app.to_string(),
                error,
            })?;
            let mut j = Journal {
                storage,
                record: JournalRecord {
                    app: app.to_string(),
                    seq: 0,
                    installed_version: 0,
                    installed_slot: Slot::A,
                    bad_versions: Vec::new(),
                    state: UpdateState::Idle,
                },
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
        let record = read_record(&storage, &path)?.ok_or_else(|| JournalError::NotInstalled {
            app: app.to_string(),
        })?;
        let mut j = Journal { storage, record };
        let recovery = j.recover()?;
        Ok((j, recovery))
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
        self.require(self.record.state.is_rest(), "stage")?;
        let app = self.record.app.clone();
        if version <= self.record.installed_version {
            return Err(JournalError::NotNewer {
                app,
                version,
                installed_version: self.record.installed_version,
            });
        }
        if self.record.bad_versions.contains(&version) {
            return Err(JournalError::KnownBad { app, version });
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
                next.state = UpdateState::Committed { slot, version };
                self.persist(next)
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
    let Some(bytes) = s
        .read(path, MAX_JOURNAL_BYTES)
        .map_err(|error| JournalError::Io {
            path: path.to_string(),
            error,
        })?
    else {
        return Ok(None);
    };
    if bytes.len() < 8 + 4 + 32 || bytes[..8] != MAGIC {
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
    let (record, _): (JournalRecord, usize) = bincode::serde::decode_from_slice(
        body,
        bincode::config::standard().with_limit::<{ MAX_JOURNAL_BYTES as usize }>(),
    )
    .map_err(|e| corrupt(&format!("undecodable record: {e}")))?;
    Ok(Some(record))
}

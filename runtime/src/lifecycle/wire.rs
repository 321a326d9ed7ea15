//! The control socket's messages and their framing.
//!
//! Owns: what travels over the supervisor's Unix socket, between `takt status|mode|stop`
//! and the supervisor, and between app processes and the supervisor. It must never trust a
//! peer: every frame is bounded by [`MAX_MESSAGE_BYTES`], carries [`PROTOCOL_VERSION`], and
//! anything that does not decode is an error, never a panic.
//!
//! A frame is a 4-byte big-endian length `n` (of what follows), a 2-byte big-endian
//! protocol version, then `n - 2` bytes of bincode (standard configuration, serde).

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::dispatch::{Quantiles, TaskStats};
use crate::task::TaskReport;

/// The version every frame carries; a peer with another version is refused by name.
/// (3: app status, probation and task statistics carry fault counts; 4: status and OTA
/// status say why updates are disabled.)
pub const PROTOCOL_VERSION: u16 = 4;

/// Largest frame body accepted: 256 KiB (a status of 64 apps or an app's end-of-run report
/// of hundreds of tasks fits easily).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// What a client or an app process asks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request {
    Status,
    SetMode {
        name: String,
    },
    Stop,
    /// An app process has built its tasks and waits for where to join.
    AppReady {
        app: String,
        pid: u32,
        version: String,
    },
    /// An app process's end-of-run results.
    AppFinished {
        app: String,
        result: Result<AppRun, String>,
    },
    /// Verify a bundle (a path the supervisor can read) and unpack it into its app's
    /// inactive slot. Answered with `Progress` frames, then `Done` or `Refused`.
    OtaStage {
        bundle: String,
    },
    /// Switch app `app` to its staged version: beside the running one at a hyperperiod
    /// boundary (`hot_swap`), or once the mode is update-safe. Answered when the switch
    /// happened (or was refused, or timed out after `timeout_ns`).
    OtaActivate {
        app: String,
        hot_swap: bool,
        timeout_ns: u64,
    },
    /// Return app `app` from its version on probation to the installed one.
    OtaRollback {
        app: String,
    },
    OtaStatus,
}

/// What the supervisor answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Status(StatusReport),
    /// Accepted; the text says what happens next.
    Done(String),
    /// Not accepted; the text says why and what is allowed.
    Refused(String),
    /// Where an app process joins the schedule.
    Join {
        epoch_ns: u64,
        start_cycle: u64,
    },
    /// How far a stage is: `done_bytes` of `total_bytes` in `phase`.
    Progress {
        phase: String,
        done_bytes: u64,
        total_bytes: u64,
    },
    Ota(OtaReport),
}

/// `takt ota status`: every app's slots, versions and update state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OtaReport {
    pub deployment: String,
    pub state_dir: String,
    /// The current cycle of the run (for probation windows), when one runs.
    pub cycle: Option<u64>,
    pub apps: Vec<OtaAppReport>,
    /// Why updates are disabled in this run (the state directory cannot be written);
    /// `None` when they are on.
    pub updates_disabled: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OtaAppReport {
    pub app: String,
    /// `idle`, `staged`, `activating`, `probation`, `committed` or `rolled-back`.
    pub state: String,
    pub installed_version: u64,
    pub installed_slot: String,
    pub running_version: u64,
    pub running_slot: String,
    /// The version the state names (staged, on probation, committed or rolled back).
    pub update_version: Option<u64>,
    pub slots: Vec<OtaSlotReport>,
    pub bad_versions: Vec<u64>,
    /// What the last operation on this app ended with, in words.
    pub last_result: Option<String>,
    pub probation: Option<ProbationReport>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OtaSlotReport {
    pub slot: String,
    /// The version a complete slot holds; `None` when empty or incomplete.
    pub version: Option<u64>,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbationReport {
    pub from_cycle: u64,
    pub until_cycle: u64,
    /// All overruns and missed releases since the switch, whoever caused them.
    pub overruns: u64,
    pub missed: u64,
    /// Of those, the platform's (not held against the version).
    pub overruns_platform: u64,
    pub missed_platform: u64,
    /// Jobs that reported a fault since the switch (`StepContext::fault`).
    pub faults: u64,
    /// The supervisor's own lateness excused from the heartbeat check so far.
    pub supervisor_late_ns: u64,
}

/// The lifecycle of one app, as `takt status` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppState {
    Starting,
    Running,
    Restarting,
    Stopped,
    Failed,
}

impl AppState {
    pub fn as_str(self) -> &'static str {
        match self {
            AppState::Starting => "starting",
            AppState::Running => "running",
            AppState::Restarting => "restarting",
            AppState::Stopped => "stopped",
            AppState::Failed => "failed",
        }
    }
}

/// One app in a status report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppStatus {
    pub name: String,
    pub pid: Option<u32>,
    pub state: AppState,
    pub restarts: u32,
    /// Time since the supervisor last saw the heartbeat move (it looks every 100 ms;
    /// `None` before the first beat).
    pub heartbeat_age_ns: Option<u64>,
    /// Hyperperiods the current process has started.
    pub heartbeat: u64,
    pub overruns: u64,
    /// Jobs skipped or ended after their deadline.
    pub missed: u64,
    /// Of `overruns` and `missed`: those the platform caused (the rest are takt's or the
    /// task's; see `takt::dispatch::attribution`).
    pub overruns_platform: u64,
    pub missed_platform: u64,
    /// Jobs that reported a fault (`StepContext::fault`), over the whole run.
    pub faults: u64,
    /// The takt version the app process reported.
    pub version: String,
}

/// The answer to [`Request::Status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    pub deployment: String,
    /// The mode of the newest decided hyperperiod.
    pub mode: String,
    /// A mode asked for and not yet in effect.
    pub requested_mode: Option<String>,
    pub uptime_ns: u64,
    /// The newest hyperperiod any dispatcher started.
    pub cycle: u64,
    /// `starting`, `running` or `stopping`.
    pub phase: String,
    pub apps: Vec<AppStatus>,
    /// Why over-the-air updates are disabled in this run (the state directory cannot
    /// be written); `None` when they are on or the run has none.
    pub updates_disabled: Option<String>,
}

/// [`TaskStats`] on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireTaskStats {
    pub name: String,
    pub core: usize,
    pub jobs: u64,
    pub skipped: u64,
    pub overruns: u64,
    pub deadline_misses: u64,
    /// The platform-attributed skips, overruns and deadline misses.
    pub platform: [u64; 3],
    /// Faulted jobs, fault reports, first and last code (see [`crate::dispatch::FaultCounts`]).
    pub faults: (u64, u64, Option<u16>, Option<u16>),
    /// min, p50, p99, max
    pub lateness_ns: [u64; 4],
    pub execution_ns: [u64; 4],
    pub cpu_ns: [u64; 4],
    pub off_cpu_max_ns: u64,
    /// Jobs spun before, and the time spun.
    pub spin: [u64; 2],
}

fn q_to(q: &Quantiles) -> [u64; 4] {
    [q.min_ns, q.p50_ns, q.p99_ns, q.max_ns]
}

fn q_from(a: [u64; 4]) -> Quantiles {
    Quantiles {
        min_ns: a[0],
        p50_ns: a[1],
        p99_ns: a[2],
        max_ns: a[3],
    }
}

impl From<&TaskStats> for WireTaskStats {
    fn from(s: &TaskStats) -> Self {
        WireTaskStats {
            name: s.name.clone(),
            core: s.core,
            jobs: s.jobs,
            skipped: s.skipped,
            overruns: s.overruns,
            deadline_misses: s.deadline_misses,
            platform: [
                s.platform.skipped,
                s.platform.overruns,
                s.platform.deadline_misses,
            ],
            faults: (
                s.faults.jobs,
                s.faults.reports,
                s.faults.first_code,
                s.faults.last_code,
            ),
            lateness_ns: q_to(&s.lateness),
            execution_ns: q_to(&s.execution),
            cpu_ns: q_to(&s.cpu),
            off_cpu_max_ns: s.off_cpu_max_ns,
            spin: [s.spun_jobs, s.spin_ns],
        }
    }
}

impl From<&WireTaskStats> for TaskStats {
    fn from(s: &WireTaskStats) -> Self {
        TaskStats {
            name: s.name.clone(),
            core: s.core,
            jobs: s.jobs,
            skipped: s.skipped,
            overruns: s.overruns,
            deadline_misses: s.deadline_misses,
            platform: crate::dispatch::PlatformShare {
                skipped: s.platform[0],
                overruns: s.platform[1],
                deadline_misses: s.platform[2],
            },
            faults: crate::dispatch::FaultCounts {
                jobs: s.faults.0,
                reports: s.faults.1,
                first_code: s.faults.2,
                last_code: s.faults.3,
            },
            lateness: q_from(s.lateness_ns),
            execution: q_from(s.execution_ns),
            cpu: q_from(s.cpu_ns),
            off_cpu_max_ns: s.off_cpu_max_ns,
            spun_jobs: s.spin[0],
            spin_ns: s.spin[1],
        }
    }
}

/// A task's [`TaskReport`] on the wire: `(task, outcome lines, digest)`.
pub type WireTaskReport = (String, Vec<(String, String)>, Option<[u8; 32]>);

/// What one app process did, sent to the supervisor at its end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRun {
    pub realtime: bool,
    pub cycles: u64,
    pub wall_ns: u64,
    pub tasks: Vec<WireTaskStats>,
    /// `(task, outcome lines, digest)` in task-name order.
    pub reports: Vec<WireTaskReport>,
    pub warnings: Vec<String>,
    /// A line about the trace file written, if any.
    pub trace: Option<String>,
}

impl AppRun {
    pub fn task_reports(&self) -> Vec<(String, TaskReport)> {
        self.reports
            .iter()
            .map(|(name, outcome, digest)| {
                (
                    name.clone(),
                    TaskReport {
                        outcome: outcome.clone(),
                        digest: *digest,
                    },
                )
            })
            .collect()
    }
}

/// Why a frame could not be read or decoded.
#[derive(Debug)]
pub enum WireError {
    Io(std::io::Error),
    /// The peer closed the connection before a whole frame.
    Closed,
    TooLarge {
        bytes: usize,
    },
    TooShort {
        bytes: usize,
    },
    Version {
        got: u16,
    },
    Decode(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Io(e) => write!(f, "control socket: {e}"),
            WireError::Closed => write!(f, "the peer closed the control connection"),
            WireError::TooLarge { bytes } => write!(
                f,
                "a message of {bytes} bytes was refused: at most {MAX_MESSAGE_BYTES} bytes are allowed"
            ),
            WireError::TooShort { bytes } => write!(
                f,
                "a message of {bytes} bytes was refused: it must hold at least the 2-byte protocol version"
            ),
            WireError::Version { got } => write!(
                f,
                "a message of protocol version {got} was refused: this takt speaks version {PROTOCOL_VERSION}"
            ),
            WireError::Decode(why) => write!(f, "a malformed message was refused: {why}"),
        }
    }
}

impl std::error::Error for WireError {}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_MESSAGE_BYTES>()
}

/// One whole frame (length, version, body) for `msg`.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, WireError> {
    let body = bincode::serde::encode_to_vec(msg, config())
        .map_err(|e| WireError::Decode(e.to_string()))?;
    if body.len() + 2 > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge {
            bytes: body.len() + 2,
        });
    }
    let mut out = Vec::with_capacity(body.len() + 6);
    out.extend_from_slice(&((body.len() + 2) as u32).to_be_bytes());
    out.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Checks a frame's length prefix before its body is read.
pub fn check_length(prefix: [u8; 4]) -> Result<usize, WireError> {
    let n = u32::from_be_bytes(prefix) as usize;
    if n > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge { bytes: n });
    }
    if n < 2 {
        return Err(WireError::TooShort { bytes: n });
    }
    Ok(n)
}

/// Decodes a frame's payload (version and body, without the length prefix).
pub fn decode<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> Result<T, WireError> {
    let [hi, lo, body @ ..] = payload else {
        return Err(WireError::TooShort {
            bytes: payload.len(),
        });
    };
    let got = u16::from_be_bytes([*hi, *lo]);
    if got != PROTOCOL_VERSION {
        return Err(WireError::Version { got });
    }
    let (msg, used) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| WireError::Decode(e.to_string()))?;
    if used != body.len() {
        return Err(WireError::Decode(format!(
            "{} trailing bytes after the message",
            body.len() - used
        )));
    }
    Ok(msg)
}

/// Writes one frame to a blocking stream.
pub fn send<T: Serialize, W: Write>(w: &mut W, msg: &T) -> Result<(), WireError> {
    let frame = encode(msg)?;
    w.write_all(&frame).map_err(WireError::Io)?;
    w.flush().map_err(WireError::Io)
}

/// Reads one frame from a blocking stream (its read timeout bounds the wait).
pub fn receive<T: for<'de> Deserialize<'de>, R: Read>(r: &mut R) -> Result<T, WireError> {
    let mut prefix = [0u8; 4];
    read_exact(r, &mut prefix)?;
    let n = check_length(prefix)?;
    let mut payload = vec![0u8; n];
    read_exact(r, &mut payload)?;
    decode(&payload)
}

fn read_exact<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<(), WireError> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            WireError::Closed
        } else {
            WireError::Io(e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips() {
        let r = Request::SetMode {
            name: "degraded".into(),
        };
        let frame = encode(&r).expect("encode");
        let n = check_length(frame[..4].try_into().expect("4 bytes")).expect("length");
        assert_eq!(n, frame.len() - 4);
        assert_eq!(decode::<Request>(&frame[4..]).expect("decode"), r);
    }

    #[test]
    fn oversize_short_wrong_version_and_garbage_are_refused() {
        assert!(matches!(
            check_length(((MAX_MESSAGE_BYTES + 1) as u32).to_be_bytes()),
            Err(WireError::TooLarge { .. })
        ));
        assert!(matches!(
            check_length(1u32.to_be_bytes()),
            Err(WireError::TooShort { .. })
        ));
        let mut frame = encode(&Request::Stop).expect("encode");
        frame[5] ^= 0xFF;
        assert!(matches!(
            decode::<Request>(&frame[4..]),
            Err(WireError::Version { .. })
        ));
        let v = PROTOCOL_VERSION.to_be_bytes();
        let garbage = [v[0], v[1], 0xFF, 0xFF, 0xFF, 0xFF, 0x7F];
        assert!(matches!(
            decode::<Request>(&garbage),
            Err(WireError::Decode(_))
        ));
    }
}

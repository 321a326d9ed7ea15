//! The host plan: everything one app process of a supervised run needs, as the supervisor
//! hands it over.
//!
//! Owns: the [`HostPlan`] (the validated deployment model, its plan tables, the catalogs the
//! supervisor validated them against, the control socket, the shared control block and the
//! run's options), its framed binary form, the owner-only file the supervisor writes it to
//! ([`HostPlanFile`]), and its bounded, checked decoding in the app process. It must never
//! parse a manifest, plan, or decide anything: the supervisor has done all three before it
//! writes the plan, and every process of the run reads the same bytes.
//!
//! # Why a binary plan, not the manifest
//!
//! An app process used to read the TOML manifest and plan the deployment itself. That made
//! every app executable link the TOML parser and the planner's validation, and an app built
//! against an older takt refused a manifest with keys it did not know yet (a newer `[ota]`
//! field), although nothing in it concerned the app. Suppliers ship on their own cadence,
//! so the contract between `takt` and an app is the small, versioned frame below
//! ([`catalog::API_VERSION`](crate::catalog::API_VERSION)), not the manifest syntax.
//!
//! # Frame and file
//!
//! ```text
//!   magic "TAKT-HOSTPLAN" (13 bytes) | format version u32 LE | payload length u32 LE
//!   | payload (bincode of HostPlan) | SHA-256 of the payload (32 bytes)
//! ```
//!
//! The framing is the catalog's ([`crate::catalog`]); the payload is bounded by
//! [`MAX_HOST_PLAN_BYTES`]. One file per run, written once before the first app process
//! starts and removed when the supervisor ends, in a directory only the supervisor's user
//! can enter (mode 0700, the file 0600). A restarted process and an OTA standby read the
//! same file; what differs between processes (app, incarnation, version, standby) is on
//! their command line (see [`app_main`](super::app_main)).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::catalog::{self, CatalogFormatError, DeploymentCatalogs, API_VERSION};
use crate::manifest::Deployment;
use crate::plan::Plan;

/// Largest host plan payload accepted. A plan at the manifest's own limits
/// ([`crate::manifest::limits`]) could be larger; the supervisor refuses to start such a run
/// with this bound named rather than hand over something its apps would refuse.
pub const MAX_HOST_PLAN_BYTES: usize = 64 << 20;

const MAGIC: &[u8; 13] = b"TAKT-HOSTPLAN";

/// What every app process of a run is handed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostPlan {
    /// [`API_VERSION`] of the supervisor that wrote it.
    pub api_version: u32,
    /// The takt crate version of that supervisor, for humans.
    pub takt_version: String,
    /// The validated deployment (manifest path in `source`, for messages).
    pub deployment: Deployment,
    /// Its verified plan tables.
    pub plan: Plan,
    /// The supervisor's control socket.
    pub control_path: PathBuf,
    /// Name of the shared control block (under /dev/shm).
    pub shm_name: String,
    /// The options every app process of the run shares.
    pub run: HostRun,
}

/// The run's options, the same for every app process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostRun {
    /// Every app's catalog as the supervisor validated the deployment with: an app process
    /// checks that its own executable still declares its part of it.
    pub catalogs: DeploymentCatalogs,
    /// Shared-memory namespace of the run's topics (one per run).
    pub namespace: String,
    /// Simulated time, in lockstep with the deployment's other app processes.
    pub sim: bool,
    pub duration_ns: u64,
    pub allow_non_rt: bool,
    /// Seed of the injected execution-time jitter, if any.
    pub inject_jitter: Option<u64>,
    /// Trace file prefix: app `A` writes `<prefix>.A` (`.A.<n>` for incarnation n).
    pub trace: Option<PathBuf>,
    /// SHA-256 of the manifest file, written into trace headers.
    pub manifest_hash: [u8; 32],
}

impl HostPlan {
    /// The framed bytes of this plan.
    pub fn encode(&self) -> Vec<u8> {
        catalog::encode_frame(MAGIC, self)
    }

    /// Decodes a frame written by [`encode`](Self::encode), refusing anything else with the
    /// reason.
    pub fn decode(bytes: &[u8]) -> Result<HostPlan, HostPlanError> {
        let plan: HostPlan = catalog::decode_frame::<_, MAX_HOST_PLAN_BYTES>(MAGIC, bytes)
            .map_err(HostPlanError::from_frame)?;
        if plan.api_version != API_VERSION {
            return Err(HostPlanError::ApiVersion {
                found: plan.api_version,
                takt_version: plan.takt_version,
            });
        }
        Ok(plan)
    }

    /// Reads and decodes the file at `path`, never more than a frame's bound.
    pub fn read(path: &Path) -> Result<HostPlan, HostPlanReadError> {
        let max = (catalog::FRAME_HEADER_BYTES + MAX_HOST_PLAN_BYTES + 32) as u64;
        let bytes = crate::fsio::read_bounded(path, max).map_err(|e| HostPlanReadError {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        HostPlan::decode(&bytes).map_err(|e| HostPlanReadError {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }
}

/// Why bytes are not a host plan this app accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPlanError {
    /// The bytes do not start with the host plan magic.
    NotAHostPlan,
    Truncated {
        have: usize,
        need: usize,
    },
    FrameVersion(u32),
    TooLarge(usize),
    Checksum,
    Payload(String),
    /// Written by a supervisor of another takt API.
    ApiVersion {
        found: u32,
        takt_version: String,
    },
}

impl HostPlanError {
    fn from_frame(e: CatalogFormatError) -> HostPlanError {
        match e {
            CatalogFormatError::NotACatalog => HostPlanError::NotAHostPlan,
            CatalogFormatError::Truncated { have, need } => HostPlanError::Truncated { have, need },
            CatalogFormatError::FrameVersion(v) => HostPlanError::FrameVersion(v),
            CatalogFormatError::TooLarge(n) => HostPlanError::TooLarge(n),
            CatalogFormatError::Checksum => HostPlanError::Checksum,
            CatalogFormatError::Payload(p) => HostPlanError::Payload(p),
            CatalogFormatError::ApiVersion {
                found,
                takt_version,
            } => HostPlanError::ApiVersion {
                found,
                takt_version,
            },
        }
    }
}

impl fmt::Display for HostPlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPlanError::NotAHostPlan => write!(
                f,
                "not a takt host plan (it does not start with the host plan magic); only `takt run` writes one"
            ),
            HostPlanError::Truncated { have, need } => {
                write!(f, "the host plan is truncated ({have} of {need} bytes)")
            }
            HostPlanError::FrameVersion(v) => write!(
                f,
                "the host plan has frame version {v}; this app reads version {}",
                catalog::FRAME_VERSION
            ),
            HostPlanError::TooLarge(n) => write!(
                f,
                "the host plan declares {n} bytes, more than the {MAX_HOST_PLAN_BYTES} allowed"
            ),
            HostPlanError::Checksum => write!(f, "the host plan is garbled (checksum mismatch)"),
            HostPlanError::Payload(e) => write!(f, "the host plan is garbled: {e}"),
            HostPlanError::ApiVersion {
                found,
                takt_version,
            } => write!(
                f,
                "the host plan was written by a supervisor of takt API version {found} (takt {takt_version}); this app was built against API version {API_VERSION} (takt {}): rebuild the app against the takt that runs it",
                env!("CARGO_PKG_VERSION")
            ),
        }
    }
}

impl std::error::Error for HostPlanError {}

/// Why the host plan file could not be read: the file and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPlanReadError {
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for HostPlanReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "host plan {}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for HostPlanReadError {}

/// The supervisor's host plan file in its private directory, both removed when dropped.
#[cfg(feature = "platform")]
pub struct HostPlanFile {
    dir: PathBuf,
    path: PathBuf,
}

#[cfg(feature = "platform")]
impl HostPlanFile {
    /// Writes `plan` to `<tmp>/takt-run-<deployment>-<pid>-<n>/host.plan` (directory 0700, file
    /// 0600) and syncs it, so it is complete before any app process may read it.
    pub fn write(plan: &HostPlan) -> Result<HostPlanFile, String> {
        use crate::sync::{AtomicU64, Ordering};
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let bytes = plan.encode();
        let payload = bytes.len() - catalog::FRAME_HEADER_BYTES - 32;
        if payload > MAX_HOST_PLAN_BYTES {
            return Err(format!(
                "{}: the host plan of this deployment takes {payload} bytes, more than the {MAX_HOST_PLAN_BYTES} an app process accepts: fewer modes, cores or jobs per hyperperiod",
                plan.deployment.source
            ));
        }
        remove_stale_dirs();
        // The deployment name is validated (no `/`); the counter keeps two supervisors of
        // one process (a program driving several runs) apart. Relaxed: it only has to hand
        // out distinct numbers, nothing is published through it.
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "takt-run-{}-{}-{}",
            plan.deployment.name,
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        ));
        let cannot =
            |what: &Path, e: std::io::Error| format!("cannot write {}: {e}", what.display());
        // A directory of this name belongs to a dead run of a process with this pid:
        // nothing of it is wanted (remove_dir_all does not follow a symlink at the top).
        if std::fs::symlink_metadata(&dir).is_ok() {
            let _ = std::fs::remove_dir_all(&dir).or_else(|_| std::fs::remove_file(&dir));
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| cannot(&dir, e))?;
        let path = dir.join("host.plan");
        let file = HostPlanFile { dir, path };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file.path)
            .map_err(|e| cannot(&file.path, e))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| cannot(&file.path, e))?;
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Removes the host plan directories of supervisors that no longer run (a supervisor
/// killed with SIGKILL cannot remove its own): `takt-run-<deployment>-<pid>-<n>` in the
/// temporary directory, owned by this user, whose `<pid>` has no `/proc` entry. Only the
/// plan file and the then empty directory are removed, never anything else. Bounded: it looks at most at
/// [`MAX_STALE_SCAN`] entries of the directory per start.
#[cfg(feature = "platform")]
fn remove_stale_dirs() {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    for entry in entries.take(MAX_STALE_SCAN).flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(stale_pid) else {
            continue;
        };
        // Only a real directory (never a symlink someone planted) of this user.
        let ours = std::fs::symlink_metadata(entry.path())
            .is_ok_and(|m| m.file_type().is_dir() && m.uid() == me);
        if ours && !Path::new("/proc").join(pid.to_string()).exists() {
            let dir = entry.path();
            let _ = std::fs::remove_file(dir.join("host.plan"));
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

/// Most temporary-directory entries one supervisor start looks at for stale host plans.
#[cfg(feature = "platform")]
const MAX_STALE_SCAN: usize = 100_000;

/// The supervisor pid in a host plan directory's name, `None` for any other name.
#[cfg(feature = "platform")]
fn stale_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("takt-run-")?;
    let mut parts = rest.rsplitn(3, '-');
    parts.next()?.parse::<u64>().ok()?;
    let pid = parts.next()?.parse::<u32>().ok()?;
    parts.next().filter(|d| !d.is_empty())?;
    Some(pid)
}

#[cfg(feature = "platform")]
impl Drop for HostPlanFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn sample() -> HostPlan {
        HostPlan {
            api_version: API_VERSION,
            takt_version: "0.0.0".into(),
            deployment: Deployment {
                name: "x".into(),
                source: "x.toml".into(),
                cores: vec![0],
                priority: 80,
                apps: Vec::new(),
                tasks: Vec::new(),
                channels: Vec::new(),
                chains: Vec::new(),
                modes: Vec::new(),
                default_mode: 0,
                update_safe_modes: Vec::new(),
                hyperperiod_ns: 10_000_000,
                ota: Default::default(),
                wake: Default::default(),
            },
            plan: Plan {
                hyperperiod_ns: 10_000_000,
                modes: Vec::new(),
                channels: Vec::new(),
                chains: Vec::new(),
            },
            control_path: "/tmp/ctl.sock".into(),
            shm_name: "takt-ctl-x".into(),
            run: HostRun {
                catalogs: DeploymentCatalogs { apps: Vec::new() },
                namespace: "x-1".into(),
                sim: true,
                duration_ns: 1_000_000_000,
                allow_non_rt: false,
                inject_jitter: Some(7),
                trace: Some("/tmp/t".into()),
                manifest_hash: [3; 32],
            },
        }
    }

    /// A plan with one of everything the wire form carries.
    fn full() -> HostPlan {
        use crate::manifest::{
            AppSpec, ChainSpec, ChannelSpec, ModeSpec, OverrunPolicy, ParamValue, TaskSpec,
        };
        use crate::plan::{ChainBound, ChannelSizing, CoreTable, ModePlan, Window};
        let mut p = sample();
        p.takt_version = "pinned".into();
        let d = &mut p.deployment;
        d.apps.push(AppSpec {
            name: "a".into(),
            executable: Some("target/release/a".into()),
            supervision: Default::default(),
        });
        for (i, name) in ["src", "dst"].into_iter().enumerate() {
            d.tasks.push(TaskSpec {
                name: name.into(),
                app: 0,
                period_ns: 10_000_000,
                offset_ns: 0,
                budget_ns: 1_000_000,
                let_ns: 10_000_000,
                core: i,
                overrun: OverrunPolicy::Escalate(0),
                params: [(
                    "gain".to_string(),
                    ParamValue::Array(vec![ParamValue::Float("0.5".into()), ParamValue::Int(-3)]),
                )]
                .into_iter()
                .collect(),
                line: 7 + i,
                implementation: "radar".into(),
                topics: [("radar_track".to_string(), format!("track_{name}"))]
                    .into_iter()
                    .collect(),
                on_fault: crate::manifest::FaultPolicy::Escalate(0),
            });
        }
        d.wake.default = crate::manifest::Wake::Spin { margin_ns: 80_000 };
        d.wake.by_core.insert(1, crate::manifest::Wake::Sleep);
        d.channels.push(ChannelSpec {
            topic: "t".into(),
            type_name: "Sample".into(),
            writer: 0,
            readers: vec![1],
        });
        d.chains.push(ChainSpec {
            name: "c".into(),
            tasks: vec![0, 1],
            topics: vec!["t".into()],
            precedence: true,
            max_data_age_ns: Some(40_000_000),
            max_reaction_ns: None,
        });
        d.modes.push(ModeSpec {
            name: "drive".into(),
            tasks: vec![0, 1],
        });
        p.plan.modes.push(ModePlan {
            mode: 0,
            cores: vec![CoreTable {
                core: 0,
                windows: vec![Window {
                    start_ns: 0,
                    task: 0,
                    budget_ns: 1_000_000,
                    release_ns: 0,
                    deadline_ns: 10_000_000,
                    job_in_cycle: 0,
                }],
                utilization_ppm: 100_000,
                spin_ns: 80_000,
            }],
        });
        p.plan.channels.push(ChannelSizing {
            buffer: 2,
            history: 1,
            max_borrowed: 1,
        });
        p.plan.chains.push(ChainBound {
            chain: 0,
            mode: Some(0),
            max_data_age_ns: 20_000_000,
            max_reaction_ns: 30_000_000,
        });
        p
    }

    /// The wire form is the contract with app executables built by other teams at other
    /// times: bincode carries no field names, so a field added to, removed from or retyped in
    /// `Deployment`, `Plan`, `HostPlan` or `HostRun` makes an older executable refuse the
    /// frame as garbled. Such a change must come with a new `catalog::API_VERSION`, so the
    /// older executable is refused at `takt check` already, naming both versions.
    #[test]
    fn the_wire_form_changes_only_with_the_api_version() {
        const PINNED: (u32, &str) = (
            3,
            "27c3a32fb6bcef4ed79c0a4cbe9c0b6f7cc45768e7ce1709328c59f2f071b4e3",
        );
        let bytes = full().encode();
        let payload = &bytes[catalog::FRAME_HEADER_BYTES..bytes.len() - 32];
        let hash: String = Sha256::digest(payload)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            PINNED == (API_VERSION, hash.as_str()),
            "the host plan's wire form is {hash} at API version {API_VERSION}; pinned is {PINNED:?}. \
             If a type of the host plan changed, bump catalog::API_VERSION and pin the new pair \
             (an app built before this change cannot decode the frame)."
        );
        // Supervisor-only parts are not on the wire: changing them changes nothing.
        let mut other = full();
        other.deployment.ota.root_keys.push([9; 32]);
        other.deployment.update_safe_modes.push(0);
        other.deployment.apps[0].executable = None;
        other.deployment.apps[0].supervision.max_restarts = 99;
        assert_eq!(other.encode(), bytes);
    }

    #[test]
    fn a_full_plan_round_trips_but_for_the_supervisors_parts() {
        let p = full();
        let mut want = p.clone();
        want.deployment.apps[0].executable = None;
        assert_eq!(HostPlan::decode(&p.encode()), Ok(want));
    }

    #[cfg(feature = "platform")]
    #[test]
    fn only_host_plan_directories_name_a_supervisor() {
        assert_eq!(stale_pid("takt-run-acc-123-0"), Some(123));
        assert_eq!(stale_pid("takt-run-lane-keep-77-12"), Some(77));
        for other in [
            "takt-run-acc-123",
            "takt-run--5-0",
            "takt-acc-1.catalogs",
            "x-1-2",
        ] {
            assert_eq!(stale_pid(other), None, "{other}");
        }
    }

    #[cfg(feature = "platform")]
    #[test]
    fn a_written_plan_reads_back_and_goes_with_its_file() {
        use std::os::unix::fs::PermissionsExt;
        let p = full();
        let file = HostPlanFile::write(&p).expect("written");
        let path = file.path().to_path_buf();
        let dir = path.parent().expect("dir").to_path_buf();
        let mode = |q: &Path| std::fs::metadata(q).expect("meta").permissions().mode() & 0o777;
        assert_eq!((mode(&dir), mode(&path)), (0o700, 0o600));
        let mut want = p;
        want.deployment.apps[0].executable = None;
        assert_eq!(HostPlan::read(&path), Ok(want));
        drop(file);
        assert!(!dir.exists(), "{} is removed with the file", dir.display());
    }

    #[test]
    fn a_host_plan_round_trips() {
        let p = sample();
        assert_eq!(HostPlan::decode(&p.encode()), Ok(p));
    }

    #[test]
    fn every_cut_and_every_flipped_byte_is_refused_never_a_panic() {
        crate::catalog::assert_every_damage_refused(&sample().encode(), HostPlan::decode);
    }

    #[test]
    fn another_api_version_is_refused_naming_both() {
        let mut p = sample();
        p.api_version = API_VERSION - 1;
        let err = HostPlan::decode(&p.encode()).expect_err("old API");
        let text = err.to_string();
        assert!(
            text.contains(&format!("API version {}", API_VERSION - 1))
                && text.contains(&format!("API version {API_VERSION}")),
            "{text}"
        );
    }

    #[test]
    fn a_catalog_frame_is_not_a_host_plan() {
        let c = DeploymentCatalogs { apps: Vec::new() }.encode();
        assert_eq!(HostPlan::decode(&c), Err(HostPlanError::NotAHostPlan));
    }

    #[test]
    fn a_huge_declared_length_is_refused_before_reading() {
        let mut bytes = sample().encode();
        bytes[MAGIC.len() + 4..MAGIC.len() + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            HostPlan::decode(&bytes),
            Err(HostPlanError::TooLarge(_))
        ));
    }
}

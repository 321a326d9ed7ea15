//! The entry point of one app process under a supervisor: every app executable (the ones
//! `[[app]] executable` names and the ones an OTA bundle carries) starts here.
//!
//! Owns: the app process's command line (the supervisor writes it, see
//! [`AppArgs::to_args`]), reading the host plan the supervisor handed over
//! ([`HostPlan`](super::host_plan::HostPlan)), checking that this executable still declares
//! what the supervisor validated, and handing over to [`host_app`](super::host_app). It
//! must never parse a manifest, plan, or decide anything the supervisor decides (epoch,
//! mode, restarts, which version owns an app).
//!
//! # Command line
//!
//! ```text
//!   EXE --takt-catalog
//!   EXE --takt-host FILE --app NAME [--incarnation N] [--version V] [--standby]
//! ```
//!
//! The first writes the catalog and exits (see [`crate::catalog`]). The second hosts app
//! `NAME` of the run `FILE` describes; what differs between the processes of one run (the
//! app, its incarnation, the OTA version it runs, standing by for a hot swap) is on the
//! command line, the rest is in the host plan. The line is parsed by hand: it is small,
//! fixed by [`API_VERSION`](crate::catalog::API_VERSION), and an app should not link an
//! argument parser for it.
//!
//! An app executable is a `main` that builds its [`Registry`] and calls [`app_main`]:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     takt::lifecycle::app_main(takt::task::Registry::new())
//! }
//! ```

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

use super::host::{host_app, HostOptions};
use super::host_plan::{HostPlan, HostPlanReadError};
use crate::catalog::{self, AppCatalog, API_VERSION};
use crate::dispatch::{ClockKind, Jitter, RunOptions, TraceOptions};
use crate::task::Registry;

/// The flag that names the host plan file.
pub const HOST_FLAG: &str = "--takt-host";

const USAGE: &str = "usage: EXE --takt-catalog\n       EXE --takt-host FILE --app NAME [--incarnation N] [--version V] [--standby]";

/// The command line the supervisor gives every app process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppArgs {
    /// The host plan file of the run.
    pub host: PathBuf,
    /// Which `[[app]]` of the deployment this process hosts.
    pub app: String,
    /// 0 for the first process of the app, +1 for every later one (restart or new version).
    pub incarnation: u32,
    /// The OTA version counter of the code this process runs (0: the manifest's own).
    pub version: u64,
    /// Start without owning the app: build every task, open every port, follow the schedule
    /// without running a job, until a handover names this incarnation (OTA hot swap).
    pub standby: bool,
}

/// Why a command line is not one [`AppArgs::parse`] accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppArgsError {
    /// `--help` or `-h`: not an error, the usage is the answer.
    Help,
    /// A flag this API version does not know (or a stray value).
    Unknown(String),
    /// A flag without its value.
    MissingValue(&'static str),
    /// A value that is not what the flag takes.
    BadValue {
        flag: &'static str,
        value: String,
        allowed: &'static str,
    },
    /// A required flag is absent.
    Missing(&'static str),
    /// A flag given twice.
    Repeated(&'static str),
}

impl fmt::Display for AppArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppArgsError::Help => write!(f, "{USAGE}"),
            AppArgsError::Unknown(a) => write!(f, "unknown argument `{a}`"),
            AppArgsError::MissingValue(flag) => write!(f, "{flag} needs a value"),
            AppArgsError::BadValue {
                flag,
                value,
                allowed,
            } => {
                write!(f, "{flag} `{value}`: expected {allowed}")
            }
            AppArgsError::Missing(flag) => write!(f, "{flag} is required"),
            AppArgsError::Repeated(flag) => write!(f, "{flag} is given twice"),
        }
    }
}

impl std::error::Error for AppArgsError {}

impl AppArgs {
    /// Parses the arguments after the program name.
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<AppArgs, AppArgsError> {
        let mut host = None;
        let mut app = None;
        let mut incarnation = None;
        let mut version = None;
        let mut standby = false;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let Some(flag) = arg.to_str() else {
                return Err(AppArgsError::Unknown(arg.to_string_lossy().into_owned()));
            };
            match flag {
                "--help" | "-h" => return Err(AppArgsError::Help),
                HOST_FLAG => set(
                    &mut host,
                    HOST_FLAG,
                    PathBuf::from(value(&mut args, HOST_FLAG)?),
                )?,
                "--app" => {
                    let v = value(&mut args, "--app")?;
                    let name = v.into_string().map_err(|v| AppArgsError::BadValue {
                        flag: "--app",
                        value: v.to_string_lossy().into_owned(),
                        allowed: "an app name (UTF-8)",
                    })?;
                    set(&mut app, "--app", name)?
                }
                "--incarnation" => {
                    let n = number(&mut args, "--incarnation")?;
                    let n = u32::try_from(n).map_err(|_| AppArgsError::BadValue {
                        flag: "--incarnation",
                        value: n.to_string(),
                        allowed: "a whole number up to 4294967295",
                    })?;
                    set(&mut incarnation, "--incarnation", n)?
                }
                "--version" => set(&mut version, "--version", number(&mut args, "--version")?)?,
                "--standby" if standby => return Err(AppArgsError::Repeated("--standby")),
                "--standby" => standby = true,
                other => return Err(AppArgsError::Unknown(other.to_string())),
            }
        }
        Ok(AppArgs {
            host: host.ok_or(AppArgsError::Missing(HOST_FLAG))?,
            app: app.ok_or(AppArgsError::Missing("--app"))?,
            incarnation: incarnation.unwrap_or(0),
            version: version.unwrap_or(0),
            standby,
        })
    }

    /// The arguments that [`parse`](Self::parse) turns back into `self` (what the supervisor
    /// starts an app process with).
    pub fn to_args(&self) -> Vec<OsString> {
        let mut out: Vec<OsString> = vec![
            HOST_FLAG.into(),
            self.host.clone().into_os_string(),
            "--app".into(),
            self.app.clone().into(),
            "--incarnation".into(),
            self.incarnation.to_string().into(),
            "--version".into(),
            self.version.to_string().into(),
        ];
        if self.standby {
            out.push("--standby".into());
        }
        out
    }
}

fn value(
    args: &mut impl Iterator<Item = OsString>,
    flag: &'static str,
) -> Result<OsString, AppArgsError> {
    args.next().ok_or(AppArgsError::MissingValue(flag))
}

fn number(
    args: &mut impl Iterator<Item = OsString>,
    flag: &'static str,
) -> Result<u64, AppArgsError> {
    let v = value(args, flag)?;
    v.to_str()
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or_else(|| AppArgsError::BadValue {
            flag,
            value: v.to_string_lossy().into_owned(),
            allowed: "a whole number",
        })
}

fn set<T>(slot: &mut Option<T>, flag: &'static str, v: T) -> Result<(), AppArgsError> {
    if slot.replace(v).is_some() {
        return Err(AppArgsError::Repeated(flag));
    }
    Ok(())
}

/// Parses the process's command line and hosts the app with `registry`'s tasks until the run
/// ends. Exit code 0 when the app ran and reported, 2 for a bad command line or host plan,
/// 1 when the run failed.
///
/// Except when it answers `--takt-catalog`, it first installs [`crate::logging::to_stderr`]
/// (a logger the app set before calling it stays).
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
    // Past the handshake this process runs an app: what it and the library report reaches
    // stderr, where the supervisor's own lines go, unless the app set its own logger.
    crate::logging::to_stderr();
    let args = match AppArgs::parse(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(AppArgsError::Help) => {
            println!("{}: one app of a takt deployment (takt API version {API_VERSION}), started by `takt run`, not by hand\n{USAGE}", executable_name());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            log::error!(
                "{}: {e}\n{USAGE}\n(an app executable built against takt API version {API_VERSION} (takt {}); `takt run` starts it)",
                executable_name(),
                env!("CARGO_PKG_VERSION")
            );
            return ExitCode::from(2);
        }
    };
    match host_with_args(&args, &registry) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// What [`app_main`] does after parsing.
pub fn host_with_args(args: &AppArgs, registry: &Registry) -> Result<(), HostError> {
    // SIGINT (a terminal's Ctrl-C reaches the whole process group) and SIGTERM (systemd
    // signals the whole cgroup) are the supervisor's to act on: it stops every app at one
    // boundary. Swallowing them here keeps an app from dying alone.
    let ignored = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, std::sync::Arc::clone(&ignored));
    }
    let who = format!("app `{}` (incarnation {})", args.app, args.incarnation);
    let failed = |cause| HostError {
        who: who.clone(),
        executable: executable_name(),
        cause,
    };
    let host = HostPlan::read(&args.host).map_err(|e| failed(HostFailure::HostPlan(e)))?;
    catalog::check_own_part(&host.run.catalogs, &args.app, &AppCatalog::of(registry))
        .map_err(|e| failed(HostFailure::NotValidated(e)))?;
    let run = &host.run;
    let trace = run.trace.as_ref().map(|prefix| {
        let mut name = prefix.clone().into_os_string();
        name.push(format!(".{}", args.app));
        if args.incarnation > 0 {
            name.push(format!(".{}", args.incarnation));
        }
        let mut t = TraceOptions::new(PathBuf::from(name), run.manifest_hash);
        t.app_name = args.app.clone();
        t
    });
    let opts = HostOptions {
        app: args.app.clone(),
        control_path: host.control_path.clone(),
        shm_name: host.shm_name.clone(),
        incarnation: args.incarnation,
        standby: args.standby,
        version: args.version,
        run: RunOptions {
            clock: if run.sim {
                ClockKind::Sim
            } else {
                ClockKind::Real
            },
            duration_ns: run.duration_ns,
            allow_non_rt: run.allow_non_rt,
            jitter: run.inject_jitter.map(|seed| Jitter {
                seed,
                max_fraction_of_budget: 0.5,
            }),
            namespace: Some(run.namespace.clone()),
            trace,
            ..RunOptions::default()
        },
    };
    host_app(&host.deployment, &host.plan, registry, &opts)
        .map(|_| ())
        .map_err(|e| failed(HostFailure::Run(e)))
}

/// Why an app process could not host its app ([`host_with_args`]): who failed, in which
/// executable, and the cause, which decides the process's exit code.
#[derive(Debug)]
pub struct HostError {
    /// `app `name` (incarnation n)`.
    pub who: String,
    pub executable: String,
    pub cause: HostFailure,
}

/// The cause of a [`HostError`].
#[derive(Debug)]
pub enum HostFailure {
    /// The supervisor's host plan could not be read (exit code 2).
    HostPlan(HostPlanReadError),
    /// This executable is not what the supervisor validated (exit code 2).
    NotValidated(catalog::OwnPartError),
    /// The app started and failed (exit code 1).
    Run(String),
}

impl HostError {
    /// The exit code of the app process: 2 when it never started (the supervisor's input or
    /// this executable is wrong), 1 when the app failed while hosting.
    pub fn exit_code(&self) -> u8 {
        match self.cause {
            HostFailure::HostPlan(_) | HostFailure::NotValidated(_) => 2,
            HostFailure::Run(_) => 1,
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: ", self.who, self.executable)?;
        match &self.cause {
            HostFailure::HostPlan(e) => write!(f, "{e}"),
            HostFailure::NotValidated(e) => write!(f, "{e}"),
            HostFailure::Run(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for HostError {}

/// This process's executable, for messages.
fn executable_name() -> String {
    std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "this executable".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_supervisors_line_parses_back() {
        let a = AppArgs {
            host: "/tmp/takt-run-x-1/host.plan".into(),
            app: "planning".into(),
            incarnation: 3,
            version: 7,
            standby: true,
        };
        assert_eq!(AppArgs::parse(a.to_args()), Ok(a));
    }

    #[test]
    fn incarnation_and_version_default_to_zero() {
        let a = AppArgs::parse(os(&["--takt-host", "f", "--app", "a"])).expect("parses");
        assert_eq!((a.incarnation, a.version, a.standby), (0, 0, false));
    }

    #[test]
    fn the_old_line_and_bad_values_are_refused_by_name() {
        let cases: [(&[&str], AppArgsError); 6] = [
            (
                &["--manifest", "m.toml", "--catalogs", "c"],
                AppArgsError::Unknown("--manifest".into()),
            ),
            (&["--app", "a"], AppArgsError::Missing(HOST_FLAG)),
            (&["--takt-host", "f"], AppArgsError::Missing("--app")),
            (&["--takt-host"], AppArgsError::MissingValue(HOST_FLAG)),
            (
                &["--takt-host", "f", "--app", "a", "--incarnation", "-1"],
                AppArgsError::BadValue {
                    flag: "--incarnation",
                    value: "-1".into(),
                    allowed: "a whole number",
                },
            ),
            (
                &["--takt-host", "f", "--app", "a", "--app", "b"],
                AppArgsError::Repeated("--app"),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(AppArgs::parse(os(line)), Err(want), "{line:?}");
        }
    }
}

//! The lifecycle manager: `takt run` as a supervisor of one process per app.
//!
//! Owns: starting app processes (bound to the supervisor's life with `PR_SET_PDEATHSIG`),
//! the shared control block (epoch, the packed mode/stop word every dispatcher decides
//! cycles with, per-app heartbeat and deadline counters), the control socket and its
//! messages, restart decisions and escalation, and systemd notification. It must never run
//! a task itself, never pick a table or a window (the plan and the dispatcher do), and never
//! wait by spinning.
//!
//! # One run, many processes
//!
//! The supervisor validates and plans once and hands every app process the same host
//! plan ([`host_plan`]: the deployment model and plan tables, as a checked binary frame);
//! each process hosts only its app's windows
//! ([`dispatch::RunOptions::tasks`](crate::dispatch::RunOptions)). Each reports ready over
//! the control socket once its dispatchers have built their tasks; the supervisor publishes
//! one epoch on `CLOCK_MONOTONIC` when all are ready, and every process walks its own
//! tables against it: there is no central tick. Modes and stops go through
//! the one [`RunControl`](crate::dispatch::RunControl) in shared memory, so every core of
//! every process switches at the same hyperperiod boundary.
//!
//! # App states
//!
//! ```text
//!   (1) spawn            -> starting
//!   (2) ready + epoch    starting -> running
//!   (3) ends mid-run     running|starting -> restarting (policy allows, within the limit)
//!   (4) restarted ready  restarting -> running, at the next hyperperiod boundary
//!   (5) ends mid-run     -> failed (policy `never` or limit reached): escalate
//!   (6) clean end        -> stopped (end of run, stop, or a clean exit not restarted)
//! ```
//!
//! A restarted app's tasks start over (their state and their share of the digest begin
//! again); the other apps keep every release, since nothing they wait on is central.
//!
//! # Deviations from the design, and why
//!
//! * The epoch and the join point reach an app over its control connection (it blocks on a
//!   read), not by polling the shared block: that way waiting costs nothing and a vanished
//!   supervisor is noticed as a closed socket. The epoch is also stored in the block.
//! * `--clock sim` always runs in one process: simulated time is one thread by definition.
//! * A restarted app's statistics cover its last process only (jobs before the crash are
//!   lost with it); the summary shows its restarts.

mod app_main;
pub mod host;
pub mod host_plan;
// The supervisor's side: only with the `platform` feature (an app process never links it).
#[cfg(feature = "platform")]
mod notify;
#[cfg(feature = "platform")]
pub mod peer;
#[cfg(feature = "platform")]
pub mod policy;
pub mod shm;
#[cfg(feature = "platform")]
pub mod supervisor;
pub mod wire;

pub use app_main::{
    app_main, host_with_args, AppArgs, AppArgsError, HostError, HostFailure, HOST_FLAG,
};
pub use host::{host_app, HostOptions};
pub use host_plan::{HostPlan, HostRun};
#[cfg(feature = "platform")]
pub use supervisor::{
    default_control_path, offline_report, request, supervise, HostCommand, OtaOptions,
    SuperviseOptions, SuperviseOutcome, KILL_POINTS,
};
pub use wire::{AppState, AppStatus, OtaReport, Request, Response, StatusReport};

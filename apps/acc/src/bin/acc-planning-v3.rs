#![deny(unsafe_code)]
//! `acc-planning-v3`: the ACC demo's `planning` app, version 3, a deliberately faulty
//! release: the planner makes version 2's decisions, bit for bit, but spends about ten
//! times its 200 us budget on every job ([`takt_acc::PlannerPolicy::Overrunning`]). Every
//! planner job overruns, so an OTA probation must reject this version and roll the app
//! back to the one it replaced.
//!
//! This is the executable an OTA bundle for the `planning` app carries
//! (`takt ota sign --app planning --version 3 --executable target/release/acc-planning-v3 ...`).
//! The supervisor starts it with the app command line of [`takt::lifecycle::app_main`]; it
//! is not meant to be started by hand. Like every version, it links only the planning app's
//! tasks, with the same ports, so the deployment's manifest validates against it unchanged.

fn main() -> std::process::ExitCode {
    takt::lifecycle::app_main(takt_acc::planning_registry(
        takt_acc::PlannerPolicy::Overrunning,
    ))
}

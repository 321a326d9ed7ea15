#![deny(unsafe_code)]
//! `acc-planning-v2`: the ACC demo's `planning` app, version 2, with the speed-scheduled
//! time gap ([`takt_acc::PlannerPolicy::SpeedScheduledGap`]: 1.6 s in slow traffic growing to
//! 2.4 s at motorway speed, instead of version 1's constant 1.8 s).
//!
//! This is the executable an OTA bundle for the `planning` app carries
//! (`takt ota sign --app planning --version 2 --executable target/release/acc-planning-v2 ...`).
//! The supervisor starts it with the app command line of [`takt::lifecycle::app_main`]; it
//! is not meant to be started by hand. Like every version, it links only the planning app's
//! tasks, with the same ports, so the deployment's manifest validates against it unchanged.

fn main() -> std::process::ExitCode {
    takt::lifecycle::app_main(takt_acc::planning_registry(
        takt_acc::PlannerPolicy::SpeedScheduledGap,
    ))
}

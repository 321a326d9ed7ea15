#![deny(unsafe_code)]
//! `acc-planning`: the ACC demo's `planning` app (`planner`, `controller`), version 1 of the
//! planner (constant time gap). It links only that app's tasks
//! ([`takt_acc::planning_registry`]); `config/acc.toml` names it, and the generic `takt`
//! learns what it hosts by asking it (`acc-planning --takt-catalog`). The supervisor starts
//! it with the app command line of [`takt::lifecycle::app_main`].

fn main() -> std::process::ExitCode {
    takt::lifecycle::app_main(takt_acc::planning_registry(
        takt_acc::PlannerPolicy::ConstantGap,
    ))
}

#![deny(unsafe_code)]
//! `acc-vehicle`: the ACC demo's `vehicle` app as an executable. It links only that app's tasks
//! ([`takt_acc::vehicle_registry`]); `config/acc.toml` names it, and the generic `takt` learns
//! what it hosts by asking it (`acc-vehicle --takt-catalog`). The supervisor starts it with the
//! app command line of [`takt::lifecycle::app_main`]; it is not meant to be started by hand.

fn main() -> std::process::ExitCode {
    takt::lifecycle::app_main(takt_acc::vehicle_registry())
}

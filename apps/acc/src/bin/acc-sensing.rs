#![deny(unsafe_code)]
//! `acc-sensing`: the ACC demo's `sensing` app as an executable. It links only that app's tasks
//! ([`takt_acc::sensing_registry`]); `config/acc.toml` names it, and the generic `takt` learns
//! what it hosts by asking it (`acc-sensing --takt-catalog`). The supervisor starts it with the
//! app command line of [`takt::lifecycle::app_main`]; it is not meant to be started by hand.

fn main() -> std::process::ExitCode {
    takt::lifecycle::app_main(takt_acc::sensing_registry())
}

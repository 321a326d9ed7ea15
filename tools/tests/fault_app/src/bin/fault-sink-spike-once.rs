#![deny(unsafe_code)]
//! `sink` that overruns its CPU budget in one job only: its process's 20th (200 ms after it
//! starts running jobs), the way a host spike makes a lone job look over budget.
fn main() -> std::process::ExitCode {
    takt::lifecycle::app_main(takt_fault_app::spiking_sink_registry(&[20]))
}

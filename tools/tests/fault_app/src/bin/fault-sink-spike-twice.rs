#![deny(unsafe_code)]
//! `sink` that overruns its CPU budget in its process's 20th and 45th jobs: 250 ms apart,
//! so the second falls into the probation window that re-checks the first.
fn main() -> std::process::ExitCode {
    takt::lifecycle::app_main(takt_fault_app::spiking_sink_registry(&[20, 45]))
}

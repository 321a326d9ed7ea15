#![deny(unsafe_code)]
fn main() -> std::process::ExitCode {
    takt::lifecycle::app_main(takt_fault_app::registry(true, false, false))
}

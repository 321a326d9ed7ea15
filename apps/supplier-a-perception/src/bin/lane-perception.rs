#![deny(unsafe_code)]
//! `lane-perception`: supplier A's `perception` app of the lane-keeping deployment
//! (`imu`, `lane_camera`, `lane_detect`, `lane_fusion`). It links only supplier A's tasks
//! ([`supplier_a_perception::registry`]); `config/lanekeep.toml` names it, and the generic
//! `takt` learns what it hosts by asking it (`lane-perception --takt-catalog`). The
//! supervisor starts it with the app command line of [`takt::lifecycle::app_main`].

fn main() -> std::process::ExitCode {
    takt::lifecycle::app_main(supplier_a_perception::registry())
}

#![deny(unsafe_code)]
//! `lane-control`: supplier B's `control` app of the lane-keeping deployment
//! (`vehicle_world`, `lateral_planner`, `steer_controller`, `steer_actuator`). It links only
//! supplier B's tasks ([`supplier_b_control::registry`]); `config/lanekeep.toml` names it,
//! and the generic `takt` learns what it hosts by asking it (`lane-control --takt-catalog`).
//! The supervisor starts it with the app command line of [`takt::lifecycle::app_main`].

fn main() -> std::process::ExitCode {
    takt::lifecycle::app_main(supplier_b_control::registry())
}

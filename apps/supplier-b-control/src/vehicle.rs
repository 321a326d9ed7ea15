//! The simulated car: where it is in its lane and how it answers the steering.
//!
//! Owns: the vehicle dynamics. A kinematic single-track model in road coordinates
//! (distance along the lane, offset from its centre line, heading relative to it) with the
//! steady-state understeer of a real car (the curvature a road-wheel angle gives shrinks
//! with lateral acceleration: `curvature = angle / (wheelbase + understeer * v^2)`), a
//! steering rack that follows its command with a first-order lag, and a lateral drift (a
//! crosswind gust) as a disturbance. Explicit Euler at the world's 1 ms step. The controller
//! knows neither the understeer nor the lag: it must close the loop on the measured yaw
//! rate, as a real one does. It must never read a clock; it uses `+`, `*` and `/` only.

use crate::trig::{cos_small, sin_small};
use takt::task::FloatParam;

/// The car's physical parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VehicleParams {
    pub wheelbase_m: f64,
    /// Road-wheel angle per lateral acceleration needed beyond the kinematic one.
    pub understeer_rad_per_mps2: f64,
    /// Time constant of the steering rack.
    pub steer_lag_s: f64,
    /// Mechanical limit of the road-wheel angle.
    pub steer_max_rad: f64,
}

// The `vehicle_world` task's parameters for the car (see `world::PARAMS`).
pub const WHEELBASE_M: FloatParam = FloatParam::new("wheelbase_m", 2.8, 1.0, 6.0);
pub const UNDERSTEER_RAD_PER_MPS2: FloatParam =
    FloatParam::new("understeer_rad_per_mps2", 0.002, 0.0, 0.02);
pub const STEER_LAG_S: FloatParam = FloatParam::new("steer_lag_s", 0.1, 0.005, 2.0);
pub const STEER_MAX_RAD: FloatParam = FloatParam::new("steer_max_rad", 0.15, 0.01, 0.6);

impl Default for VehicleParams {
    fn default() -> Self {
        VehicleParams {
            wheelbase_m: WHEELBASE_M.default,
            understeer_rad_per_mps2: UNDERSTEER_RAD_PER_MPS2.default,
            steer_lag_s: STEER_LAG_S.default,
            steer_max_rad: STEER_MAX_RAD.default,
        }
    }
}

impl VehicleParams {
    /// The road-wheel angle that drives `curvature_per_m` at `speed_mps` in steady state.
    pub fn steer_for(&self, curvature_per_m: f64, speed_mps: f64) -> f64 {
        curvature_per_m * (self.wheelbase_m + self.understeer_rad_per_mps2 * speed_mps * speed_mps)
    }
}

/// The car in its lane.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Car {
    pub distance_m: f64,
    /// Left of the lane's centre line.
    pub offset_m: f64,
    /// Heading minus the lane's heading (turned left: positive).
    pub heading_rad: f64,
    /// Road-wheel angle (left: positive).
    pub steer_rad: f64,
    pub speed_mps: f64,
}

impl Car {
    /// Curvature of the car's path.
    pub fn curvature_per_m(&self, p: &VehicleParams) -> f64 {
        self.steer_rad
            / (p.wheelbase_m + p.understeer_rad_per_mps2 * self.speed_mps * self.speed_mps)
    }

    pub fn yaw_rate_radps(&self, p: &VehicleParams) -> f64 {
        self.speed_mps * self.curvature_per_m(p)
    }

    /// One step of `dt_s` with the rack commanded to `steer_command_rad`, on a lane of
    /// curvature `road_curvature_per_m`, pushed sideways at `drift_mps`.
    pub fn step(
        &mut self,
        p: &VehicleParams,
        steer_command_rad: f64,
        road_curvature_per_m: f64,
        drift_mps: f64,
        dt_s: f64,
    ) {
        let command = steer_command_rad.clamp(-p.steer_max_rad, p.steer_max_rad);
        let yaw_rate = self.yaw_rate_radps(p);
        let along_mps = self.speed_mps * cos_small(self.heading_rad)
            / (1.0 - road_curvature_per_m * self.offset_m);
        let across_mps = self.speed_mps * sin_small(self.heading_rad) + drift_mps;
        self.distance_m += along_mps * dt_s;
        self.offset_m += across_mps * dt_s;
        self.heading_rad += (yaw_rate - road_curvature_per_m * along_mps) * dt_s;
        self.steer_rad += (command - self.steer_rad) * (dt_s / p.steer_lag_s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_steady_state_angle_follows_a_bend_and_the_rack_lags() {
        let p = VehicleParams::default();
        let v = 25.0;
        let curvature = 1.0 / 300.0;
        let angle = p.steer_for(curvature, v);
        let mut car = Car {
            speed_mps: v,
            steer_rad: angle,
            ..Car::default()
        };
        for _ in 0..10_000 {
            car.step(&p, angle, curvature, 0.0, 0.001);
        }
        // 250 m of bend at exactly the right angle: still on the centre line.
        assert!((car.distance_m - 250.0).abs() < 1e-6, "{}", car.distance_m);
        assert!(
            car.offset_m.abs() < 1e-9 && car.heading_rad.abs() < 1e-12,
            "{car:?}"
        );
        // The rack reaches 63% of a step in one time constant.
        let mut car = Car {
            speed_mps: v,
            ..Car::default()
        };
        for _ in 0..100 {
            car.step(&p, 0.01, 0.0, 0.0, 0.001);
        }
        assert!(
            (car.steer_rad / 0.01 - 0.634).abs() < 0.01,
            "{}",
            car.steer_rad
        );
        // A crosswind pushes the car sideways, and the command is limited.
        let mut car = Car {
            speed_mps: v,
            ..Car::default()
        };
        car.step(&p, 1.0, 0.0, 0.5, 0.1);
        assert!((car.offset_m - 0.05).abs() < 1e-12);
        assert!((car.steer_rad - p.steer_max_rad).abs() < 1e-12);
    }
}

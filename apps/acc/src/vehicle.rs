//! Longitudinal vehicle dynamics and the lead vehicle's speed profile, as pure functions.
//!
//! Owns: the physics of the demo. The ego vehicle follows its applied command through a
//! first-order lag (engine and brake response), loses speed to rolling and aerodynamic drag,
//! cannot exceed its physical acceleration limits and never rolls backwards. The lead
//! vehicle follows a piecewise-constant acceleration profile (cruise, hard brake,
//! acceleration, steady, stop, standstill, go) whose magnitudes a seed may perturb.
//! Everything here is plain `f64` arithmetic in a fixed order on caller-owned state: no
//! ports, no clocks, no allocation, so the same inputs give bit-identical trajectories.
//! It must never read time itself: the caller passes the instant and the step length.

use takt::rng::SplitMix64;
use takt::task::{FloatParam, SeedParam};

/// Physical parameters of the ego vehicle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VehicleParams {
    /// Time constant of the first-order lag between command and drive/brake acceleration.
    pub lag_s: f64,
    /// Most drive acceleration the powertrain can produce.
    pub accel_max_mps2: f64,
    /// Most brake deceleration the brakes can produce (negative).
    pub accel_min_mps2: f64,
    /// Rolling resistance as a deceleration, applied while moving. A standing vehicle
    /// starts to move only when the drive acceleration exceeds it.
    pub rolling_mps2: f64,
    /// Aerodynamic drag coefficient: deceleration = `aero_per_m * v^2`.
    pub aero_per_m: f64,
}

// The `world` task's parameters for the ego vehicle (see `world::PARAMS`).
pub const EGO_LAG_S: FloatParam = FloatParam::new("ego_lag_s", 0.3, 0.01, 5.0);
pub const EGO_ACCEL_MAX_MPS2: FloatParam = FloatParam::new("ego_accel_max_mps2", 3.0, 0.5, 10.0);
pub const EGO_ACCEL_MIN_MPS2: FloatParam = FloatParam::new("ego_accel_min_mps2", -9.0, -15.0, -0.5);
pub const EGO_ROLLING_MPS2: FloatParam = FloatParam::new("ego_rolling_mps2", 0.1, 0.0, 1.0);
pub const EGO_AERO_PER_M: FloatParam = FloatParam::new("ego_aero_per_m", 0.0003, 0.0, 0.01);

impl Default for VehicleParams {
    fn default() -> Self {
        VehicleParams {
            lag_s: EGO_LAG_S.default,
            accel_max_mps2: EGO_ACCEL_MAX_MPS2.default,
            accel_min_mps2: EGO_ACCEL_MIN_MPS2.default,
            rolling_mps2: EGO_ROLLING_MPS2.default,
            aero_per_m: EGO_AERO_PER_M.default,
        }
    }
}

impl VehicleParams {
    /// Deceleration from rolling resistance and air drag at `speed_mps` (0 at standstill).
    pub fn drag_mps2(&self, speed_mps: f64) -> f64 {
        if speed_mps > 0.0 {
            self.rolling_mps2 + self.aero_per_m * speed_mps * speed_mps
        } else {
            0.0
        }
    }
}

/// The ego vehicle's longitudinal state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ego {
    /// Position of the front bumper along the lane.
    pub position_m: f64,
    pub speed_mps: f64,
    /// Net acceleration over the last step (what an accelerometer reports).
    pub accel_mps2: f64,
    /// Drive/brake acceleration the powertrain currently produces (the lagged command).
    pub drive_mps2: f64,
}

impl Ego {
    /// A vehicle cruising at `speed_mps`: its drive acceleration balances the drag, so it
    /// holds its speed until a command changes it.
    pub fn cruising(params: &VehicleParams, position_m: f64, speed_mps: f64) -> Self {
        Ego {
            position_m,
            speed_mps,
            accel_mps2: 0.0,
            drive_mps2: params.drag_mps2(speed_mps),
        }
    }

    /// Advances the state by `dt_s` with `command_mps2` held over the step.
    pub fn step(&mut self, params: &VehicleParams, command_mps2: f64, dt_s: f64) {
        // Explicit Euler on the lag is stable while dt < lag; the factor is clamped so a
        // step longer than the lag settles instead of overshooting.
        let blend = (dt_s / params.lag_s).min(1.0);
        self.drive_mps2 += (command_mps2 - self.drive_mps2) * blend;
        self.drive_mps2 = self
            .drive_mps2
            .clamp(params.accel_min_mps2, params.accel_max_mps2);
        let standing_held = self.speed_mps <= 0.0 && self.drive_mps2 <= params.rolling_mps2;
        let net_mps2 = if standing_held {
            // Brakes or rolling resistance hold a standing car: it does not roll back.
            0.0
        } else {
            self.drive_mps2 - params.drag_mps2(self.speed_mps)
        };
        let speed_next = (self.speed_mps + net_mps2 * dt_s).max(0.0);
        self.accel_mps2 = (speed_next - self.speed_mps) / dt_s;
        // Trapezoidal position update: exact for the piecewise-linear speed above.
        self.position_m += (self.speed_mps + speed_next) * 0.5 * dt_s;
        self.speed_mps = speed_next;
    }
}

/// What a phase of the lead's profile is, for reports and for the convergence check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhaseKind {
    Cruise,
    BrakeHard,
    Accelerate,
    Steady,
    Stop,
    Standstill,
    Go,
    /// After the last declared phase: constant speed forever.
    FinalCruise,
}

impl PhaseKind {
    pub fn name(self) -> &'static str {
        match self {
            PhaseKind::Cruise => "cruise",
            PhaseKind::BrakeHard => "brake-hard",
            PhaseKind::Accelerate => "accelerate",
            PhaseKind::Steady => "steady",
            PhaseKind::Stop => "stop",
            PhaseKind::Standstill => "standstill",
            PhaseKind::Go => "go",
            PhaseKind::FinalCruise => "final-cruise",
        }
    }
}

/// One phase: a constant lead acceleration for a duration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Phase {
    pub kind: PhaseKind,
    pub duration_ns: u64,
    pub accel_mps2: f64,
}

/// The declared phases, in order; [`PhaseKind::FinalCruise`] follows them implicitly.
pub const PHASES: usize = 7;

/// The nominal profile and its seeded perturbation, as the world's parameters give it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProfileSpec {
    /// `(kind, duration_s, accel_mps2)` for each declared phase, in order.
    pub phases: [(PhaseKind, f64, f64); PHASES],
    /// Each non-zero acceleration is scaled by `1 + jitter * u` with `u` uniform in
    /// `[-1, 1)` drawn from `seed`, so different seeds give different but reproducible
    /// scenarios. 0 keeps the nominal profile.
    pub jitter: f64,
    pub seed: u64,
}

// The `world` task's parameters for the lead's profile: `<phase>_s` (duration) and, for
// accelerating phases, `<phase>_mps2`. The nominal profile is their defaults.
pub const CRUISE_S: FloatParam = phase_s("cruise_s", 3.0);
pub const BRAKE_HARD_S: FloatParam = phase_s("brake_hard_s", 1.5);
pub const BRAKE_HARD_MPS2: FloatParam = braking("brake_hard_mps2", -6.0);
pub const ACCELERATE_S: FloatParam = phase_s("accelerate_s", 1.5);
pub const ACCELERATE_MPS2: FloatParam = speeding_up("accelerate_mps2", 2.0);
pub const STEADY_S: FloatParam = phase_s("steady_s", 6.0);
pub const STOP_S: FloatParam = phase_s("stop_s", 6.0);
pub const STOP_MPS2: FloatParam = braking("stop_mps2", -3.0);
pub const STANDSTILL_S: FloatParam = phase_s("standstill_s", 3.0);
pub const GO_S: FloatParam = phase_s("go_s", 5.0);
pub const GO_MPS2: FloatParam = speeding_up("go_mps2", 2.0);

const fn phase_s(name: &'static str, default: f64) -> FloatParam {
    FloatParam::new(name, default, 0.0, 3600.0)
}
const fn braking(name: &'static str, default: f64) -> FloatParam {
    FloatParam::new(name, default, -12.0, -0.1)
}
const fn speeding_up(name: &'static str, default: f64) -> FloatParam {
    FloatParam::new(name, default, 0.1, 6.0)
}

/// The declared phases in order, with their duration and acceleration parameters (none
/// for a constant-speed phase).
pub const PHASE_PARAMS: [(PhaseKind, FloatParam, Option<FloatParam>); PHASES] = [
    (PhaseKind::Cruise, CRUISE_S, None),
    (PhaseKind::BrakeHard, BRAKE_HARD_S, Some(BRAKE_HARD_MPS2)),
    (PhaseKind::Accelerate, ACCELERATE_S, Some(ACCELERATE_MPS2)),
    (PhaseKind::Steady, STEADY_S, None),
    (PhaseKind::Stop, STOP_S, Some(STOP_MPS2)),
    (PhaseKind::Standstill, STANDSTILL_S, None),
    (PhaseKind::Go, GO_S, Some(GO_MPS2)),
];
pub const PROFILE_JITTER: FloatParam = FloatParam::new("profile_jitter", 0.0, 0.0, 0.5);
pub const PROFILE_SEED: SeedParam = SeedParam::new("seed", 0);

impl Default for ProfileSpec {
    fn default() -> Self {
        ProfileSpec {
            phases: PHASE_PARAMS.map(|(kind, duration, accel)| {
                (kind, duration.default, accel.map_or(0.0, |a| a.default))
            }),
            jitter: PROFILE_JITTER.default,
            seed: PROFILE_SEED.default,
        }
    }
}

/// The lead vehicle's acceleration as a function of logical time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeadProfile {
    phases: [Phase; PHASES],
    /// `starts_ns[i]` = start of phase `i`; `starts_ns[PHASES]` = start of the final cruise.
    starts_ns: [u64; PHASES + 1],
}

impl LeadProfile {
    pub fn new(spec: &ProfileSpec) -> Self {
        let mut rng = SplitMix64::new(spec.seed);
        let mut phases = [Phase {
            kind: PhaseKind::Cruise,
            duration_ns: 0,
            accel_mps2: 0.0,
        }; PHASES];
        let mut starts_ns = [0u64; PHASES + 1];
        let mut t_ns = 0u64;
        for (i, &(kind, duration_s, accel_mps2)) in spec.phases.iter().enumerate() {
            // One draw per phase whether or not it is used keeps the sequence aligned.
            let u = 2.0 * rng.next_unit() - 1.0;
            let scaled = accel_mps2 * (1.0 + spec.jitter * u);
            let duration_ns = (duration_s.max(0.0) * 1e9 + 0.5) as u64;
            phases[i] = Phase {
                kind,
                duration_ns,
                accel_mps2: scaled,
            };
            starts_ns[i] = t_ns;
            t_ns = t_ns.saturating_add(duration_ns);
        }
        starts_ns[PHASES] = t_ns;
        LeadProfile { phases, starts_ns }
    }

    /// Index of the phase active at `t_ns` (`PHASES` = the final cruise).
    pub fn phase_index(&self, t_ns: u64) -> usize {
        // Phases are few; a linear scan is clearer than a search. Zero-length phases are
        // skipped because their start equals the next one's.
        let mut index = PHASES;
        for i in (0..PHASES).rev() {
            if t_ns < self.starts_ns[i + 1] && t_ns >= self.starts_ns[i] {
                index = i;
            }
        }
        index
    }

    pub fn kind(&self, index: usize) -> PhaseKind {
        self.phases
            .get(index)
            .map_or(PhaseKind::FinalCruise, |p| p.kind)
    }

    /// The lead's acceleration at `t_ns`.
    pub fn accel_mps2(&self, t_ns: u64) -> f64 {
        self.phases
            .get(self.phase_index(t_ns))
            .map_or(0.0, |p| p.accel_mps2)
    }

    /// The start of phase `index` (`PHASES` = the final cruise).
    pub fn start_ns(&self, index: usize) -> u64 {
        self.starts_ns[index.min(PHASES)]
    }

    pub fn phase(&self, index: usize) -> Option<&Phase> {
        self.phases.get(index)
    }
}

/// The lead vehicle's state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lead {
    /// Position of the rear bumper along the lane.
    pub position_m: f64,
    pub speed_mps: f64,
    pub accel_mps2: f64,
}

impl Lead {
    /// Advances by `dt_s` at `accel_mps2`; the lead stops at zero speed and never reverses.
    pub fn step(&mut self, accel_mps2: f64, dt_s: f64) {
        let speed_next = (self.speed_mps + accel_mps2 * dt_s).max(0.0);
        self.accel_mps2 = (speed_next - self.speed_mps) / dt_s;
        self.position_m += (self.speed_mps + speed_next) * 0.5 * dt_s;
        self.speed_mps = speed_next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DT: f64 = 0.01;

    #[test]
    fn each_phase_parameter_is_named_after_its_phase() {
        for (kind, duration, accel) in PHASE_PARAMS {
            let phase = kind.name().replace('-', "_");
            assert_eq!(duration.name, format!("{phase}_s"));
            let constant_speed = matches!(
                kind,
                PhaseKind::Cruise | PhaseKind::Steady | PhaseKind::Standstill
            );
            assert_eq!(accel.is_none(), constant_speed, "{phase}");
            if let Some(a) = accel {
                assert_eq!(a.name, format!("{phase}_mps2"));
            }
        }
    }

    #[test]
    fn cruising_vehicle_holds_its_speed_under_its_own_drive() {
        let p = VehicleParams::default();
        let mut ego = Ego::cruising(&p, 0.0, 20.0);
        for _ in 0..100 {
            let hold = p.drag_mps2(ego.speed_mps);
            ego.step(&p, hold, DT);
        }
        assert!((ego.speed_mps - 20.0).abs() < 1e-3, "{}", ego.speed_mps);
        assert!((ego.position_m - 20.0).abs() < 1e-2, "{}", ego.position_m);
    }

    #[test]
    fn command_is_followed_with_a_lag_and_within_limits() {
        let p = VehicleParams::default();
        let mut ego = Ego::cruising(&p, 0.0, 20.0);
        // One lag time after a step to -4, about 63% of the step has arrived.
        let start = ego.drive_mps2;
        let steps = (p.lag_s / DT) as usize;
        for _ in 0..steps {
            ego.step(&p, -4.0, DT);
        }
        let arrived = (start - ego.drive_mps2) / (start + 4.0);
        assert!((0.6..0.68).contains(&arrived), "arrived fraction {arrived}");
        // Beyond the physical limit the drive saturates.
        for _ in 0..500 {
            ego.step(&p, -50.0, DT);
        }
        assert_eq!(ego.drive_mps2, p.accel_min_mps2);
    }

    #[test]
    fn braking_stops_the_vehicle_and_it_never_reverses() {
        let p = VehicleParams::default();
        let mut ego = Ego::cruising(&p, 0.0, 5.0);
        let mut last_position = ego.position_m;
        for _ in 0..1000 {
            ego.step(&p, -3.0, DT);
            assert!(ego.speed_mps >= 0.0);
            assert!(ego.position_m >= last_position);
            last_position = ego.position_m;
        }
        assert_eq!(ego.speed_mps, 0.0);
        assert_eq!(ego.accel_mps2, 0.0);
        // A small drive below rolling resistance does not move it.
        for _ in 0..100 {
            ego.step(&p, 0.05, DT);
        }
        assert_eq!(ego.speed_mps, 0.0);
    }

    #[test]
    fn nominal_profile_brakes_stops_and_goes() {
        let profile = LeadProfile::new(&ProfileSpec::default());
        let mut lead = Lead {
            position_m: 0.0,
            speed_mps: 20.0,
            accel_mps2: 0.0,
        };
        let mut kinds = Vec::new();
        let mut min_speed = f64::MAX;
        let steps = 40_000_000_000u64 / 10_000_000;
        for k in 0..steps {
            let t_ns = k * 10_000_000;
            let kind = profile.kind(profile.phase_index(t_ns));
            if kinds.last() != Some(&kind) {
                kinds.push(kind);
            }
            lead.step(profile.accel_mps2(t_ns), DT);
            min_speed = min_speed.min(lead.speed_mps);
        }
        assert_eq!(
            kinds,
            [
                PhaseKind::Cruise,
                PhaseKind::BrakeHard,
                PhaseKind::Accelerate,
                PhaseKind::Steady,
                PhaseKind::Stop,
                PhaseKind::Standstill,
                PhaseKind::Go,
                PhaseKind::FinalCruise
            ]
        );
        assert_eq!(min_speed, 0.0, "the lead comes to a full stop");
        assert!((lead.speed_mps - 10.0).abs() < 1e-9, "{}", lead.speed_mps);
    }

    #[test]
    fn seed_perturbs_accelerations_reproducibly() {
        let spec = |seed| ProfileSpec {
            jitter: 0.2,
            seed,
            ..ProfileSpec::default()
        };
        let a = LeadProfile::new(&spec(1));
        let b = LeadProfile::new(&spec(1));
        let c = LeadProfile::new(&spec(2));
        assert_eq!(a, b);
        assert_ne!(a, c);
        for i in 0..PHASES {
            let nominal = ProfileSpec::default().phases[i].2;
            let got = a.phase(i).map(|p| p.accel_mps2).unwrap_or(f64::NAN);
            assert!((got - nominal).abs() <= nominal.abs() * 0.2 + 1e-12);
        }
    }
}

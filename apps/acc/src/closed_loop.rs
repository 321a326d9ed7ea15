//! The control design proven without ports: the world, radar, fusion, planner, controller
//! and actuator cores run as plain functions over the lead's profile, on the LET schedule
//! of `config/acc.toml` (each task's period, offset and LET are read from the manifest).
//!
//! Jobs run in release order. Every output goes into a mailbox stamped with the producing
//! job's LET deadline, and every job reads the newest entry visible at its release: the
//! same data flow as takt's ports, so the loop delays here are exactly those of the
//! deployment (truth to brake in 30-40 ms, the command held by the world over a step).

use crate::actuator::{ActuatorLimiter, ActuatorParams};
use crate::controller::{AccelController, ControllerParams};
use crate::messages::TRUE;
use crate::perception::{fuse, RadarHold};
use crate::planner::{fresh, Target, TimeGapPolicy};
use crate::radar::{RadarModel, RadarParams};
use crate::vehicle::{PhaseKind, ProfileSpec};
use crate::world::{ConvergenceRule, GapPolicy, OutcomeTracker, WorldConfig, WorldSim};

const MS: u64 = 1_000_000;

/// The manifest, compiled in so the test always runs the schedule that ships.
const MANIFEST: &str = include_str!("../../../config/acc.toml");

/// The tasks of the loop, in the order jobs released at the same instant run (any order
/// gives the same result under LET; a fixed one keeps the test simple).
const STAGES: [&str; 6] = [
    "world",
    "radar",
    "perception",
    "planner",
    "controller",
    "actuator",
];

#[derive(Clone, Copy, Debug)]
struct Timing {
    period_ns: u64,
    offset_ns: u64,
    let_ns: u64,
}

fn timing_of(task: &str) -> Timing {
    let doc: toml::Table = MANIFEST.parse().expect("config/acc.toml parses");
    let t = doc["task"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .filter_map(|v| v.as_table())
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some(task))
        })
        .unwrap_or_else(|| panic!("config/acc.toml has no task `{task}`"));
    let ns = |key: &str| {
        t.get(key).map(|v| {
            takt::time::parse_duration_ns(v.as_str().unwrap_or_default())
                .unwrap_or_else(|e| panic!("task `{task}`: `{key}`: {e}"))
        })
    };
    let period_ns = ns("period").expect("period");
    Timing {
        period_ns,
        offset_ns: ns("offset").unwrap_or(0),
        let_ns: ns("let").unwrap_or(period_ns),
    }
}

/// One topic: every value published, with the instant it becomes visible.
struct Mailbox<T> {
    entries: Vec<(u64, T)>,
}

impl<T: Copy> Mailbox<T> {
    fn new() -> Self {
        Mailbox {
            entries: Vec::new(),
        }
    }
    fn publish(&mut self, visible_at_ns: u64, value: T) {
        debug_assert!(self
            .entries
            .last()
            .is_none_or(|(at, _)| *at <= visible_at_ns));
        self.entries.push((visible_at_ns, value));
    }
    /// The newest value visible at `release_ns`. Entries are in visibility order: one
    /// producer per topic, with a fixed LET, publishes them that way.
    fn read(&self, release_ns: u64) -> Option<T> {
        let visible = self.entries.partition_point(|(at, _)| *at <= release_ns);
        visible.checked_sub(1).map(|i| self.entries[i].1)
    }
}

struct Scenario {
    world: WorldConfig,
    policy: TimeGapPolicy,
    radar_seed: u64,
    /// The controller stops being released from this instant on (fault injection).
    controller_stops_at_ns: Option<u64>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            world: WorldConfig::default(),
            policy: TimeGapPolicy::default(),
            radar_seed: 7,
            controller_stops_at_ns: None,
        }
    }
}

struct Outcome {
    tracker: OutcomeTracker,
    lines: Vec<(String, String)>,
    final_speed_mps: f64,
    safe_stop_jobs: u64,
}

fn run(s: &Scenario, duration_ns: u64) -> Outcome {
    let timings = STAGES.map(timing_of);
    let world_step_ns = timings[0].period_ns;
    let mut sim = WorldSim::new(
        WorldConfig {
            step_ns: world_step_ns,
            ..s.world
        },
        0,
    );
    let mut held_mps2 = sim.cruise_command_mps2();
    let mut radar = RadarModel::new(RadarParams::default(), s.radar_seed);
    let mut radar_hold = RadarHold::default();
    let mut controller = AccelController::new(ControllerParams::default());
    let mut actuator = ActuatorLimiter::new(ActuatorParams::default());
    let mut tracker = OutcomeTracker::new(ConvergenceRule::default());
    let policy = GapPolicy {
        time_gap_s: s.policy.time_gap_s,
        standstill_m: s.policy.standstill_m,
    };
    // The tasks' default timeouts (perception, planner, controller).
    let (radar_timeout_ns, object_timeout_ns, request_timeout_ns, ego_timeout_ns) =
        (45 * MS, 60 * MS, 60 * MS, 30 * MS);
    let mut truth_box = Mailbox::new();
    let mut track_box = Mailbox::new();
    let mut object_box = Mailbox::new();
    let mut request_box: Mailbox<(f64, u64)> = Mailbox::new();
    let mut command_box: Mailbox<(f64, u64)> = Mailbox::new();
    let mut applied_box = Mailbox::new();
    let mut safe_stop_jobs = 0;
    let mut had_request = false;

    let mut jobs = Vec::new();
    for (stage, t) in timings.iter().enumerate() {
        let mut release_ns = t.offset_ns;
        while release_ns < duration_ns {
            jobs.push((release_ns, stage, release_ns + t.let_ns));
            release_ns += t.period_ns;
        }
    }
    jobs.sort_unstable();
    for (r, stage, d) in jobs {
        let dt_s = timings[stage].period_ns as f64 * 1e-9;
        match STAGES[stage] {
            "world" => {
                sim.advance_to(r, held_mps2);
                let truth = sim.truth();
                truth_box.publish(d, truth);
                if let Some(a) = applied_box.read(r) {
                    held_mps2 = a;
                }
                let seen = request_box
                    .read(r)
                    .filter(|&(_, at)| fresh(r, at, request_timeout_ns));
                tracker.observe(&sim.profile, &truth, seen.map(|_| policy));
            }
            "radar" => {
                if let Some(truth) = truth_box.read(r) {
                    track_box.publish(d, radar.measure(&truth));
                }
            }
            "perception" => {
                if let Some(track) = track_box.read(r) {
                    radar_hold.update(&track, 0.1);
                }
                object_box.publish(d, fuse(r, radar_hold.fix(r, radar_timeout_ns), None));
            }
            "planner" => {
                let target = object_box
                    .read(r)
                    .filter(|o| o.valid == TRUE && fresh(r, o.time_ns, object_timeout_ns))
                    .map(|o| Target {
                        range_m: o.range_m,
                        range_rate_mps: o.range_rate_mps,
                    });
                let speed = truth_box
                    .read(r)
                    .filter(|t| fresh(r, t.time_ns, ego_timeout_ns))
                    .map(|t| t.ego_speed_mps);
                let accel_mps2 = match speed {
                    Some(v) => s.policy.decide(v, target).accel_mps2,
                    None => -2.0,
                };
                request_box.publish(d, (accel_mps2, r));
            }
            "controller" => {
                if s.controller_stops_at_ns.is_some_and(|stop| r >= stop) {
                    continue;
                }
                // Like the task: hold the speed before the first request, brake once lost.
                let desired = match request_box
                    .read(r)
                    .filter(|&(_, at)| fresh(r, at, request_timeout_ns))
                {
                    Some((a, _)) => {
                        had_request = true;
                        a
                    }
                    None if !had_request => 0.0,
                    None => -2.0,
                };
                let measured = truth_box
                    .read(r)
                    .filter(|t| fresh(r, t.time_ns, ego_timeout_ns))
                    .map(|t| (t.ego_speed_mps, t.ego_accel_mps2));
                command_box.publish(d, (controller.step(desired, measured, dt_s), r));
            }
            "actuator" => {
                let out = actuator.step(r, command_box.read(r), dt_s);
                if out.safe_stop {
                    safe_stop_jobs += 1;
                }
                applied_box.publish(d, out.accel_mps2);
            }
            other => unreachable!("STAGES holds no `{other}`"),
        }
    }
    let lines = tracker.conclude(&sim.profile);
    Outcome {
        tracker,
        lines,
        final_speed_mps: sim.ego.speed_mps,
        safe_stop_jobs,
    }
}

fn assert_safe_and_converged(o: &Outcome, what: &str) {
    let t = &o.tracker;
    assert_eq!(t.collision_at_ns, None, "{what}: collision; {:?}", o.lines);
    assert!(
        t.min_gap_m > 1.0,
        "{what}: min gap {}; {:?}",
        t.min_gap_m,
        o.lines
    );
    assert!(
        t.phases_judged >= 1,
        "{what}: nothing judged; {:?}",
        o.lines
    );
    assert_eq!(
        t.phases_converged, t.phases_judged,
        "{what}: a steady phase did not converge; {:?}",
        o.lines
    );
}

#[test]
fn nominal_profile_is_followed_through_stop_and_go_without_collision() {
    let o = run(&Scenario::default(), 40_000 * MS);
    assert_safe_and_converged(&o, "nominal 40 s");
    // cruise, steady and final-cruise are judged; the standstill phase is not.
    assert_eq!(o.tracker.phases_judged, 3, "{:?}", o.lines);
    assert_eq!(
        o.tracker.last_verdict,
        Some((PhaseKind::FinalCruise, true)),
        "{:?}",
        o.lines
    );
    // By the end of each steady phase the gap is close to the policy, not just within 10%.
    assert!(o.tracker.max_end_gap_error_pct < 2.0, "{:?}", o.lines);
    // The ego stopped behind the lead and pulled away again.
    assert!(o.final_speed_mps > 9.0, "{:?}", o.lines);
    assert_eq!(o.safe_stop_jobs, 0);
}

#[test]
fn ten_and_three_second_runs_converge() {
    for (duration_ns, phase) in [
        (10_000 * MS, PhaseKind::Steady),
        (3_000 * MS, PhaseKind::Cruise),
    ] {
        let o = run(&Scenario::default(), duration_ns);
        assert_safe_and_converged(&o, &format!("{duration_ns} ns"));
        assert_eq!(o.tracker.last_verdict, Some((phase, true)), "{:?}", o.lines);
    }
}

#[test]
fn perturbed_profiles_and_noise_seeds_stay_safe_and_converge() {
    for seed in 1..=16u64 {
        let s = Scenario {
            world: WorldConfig {
                profile: ProfileSpec {
                    jitter: 0.25,
                    seed,
                    ..ProfileSpec::default()
                },
                ..WorldConfig::default()
            },
            radar_seed: seed * 31,
            ..Scenario::default()
        };
        let o = run(&s, 40_000 * MS);
        assert_safe_and_converged(&o, &format!("seed {seed}"));
    }
}

#[test]
fn starting_far_behind_or_too_close_converges_within_the_first_phase() {
    for initial_gap_m in [25.0, 60.0] {
        let mut s = Scenario::default();
        s.world.initial_gap_m = initial_gap_m;
        // A long first cruise phase: the transient has time to settle.
        s.world.profile.phases[0].1 = 12.0;
        let o = run(&s, 12_000 * MS);
        assert_safe_and_converged(&o, &format!("initial gap {initial_gap_m} m"));
        assert_eq!(
            o.tracker.last_verdict,
            Some((PhaseKind::Cruise, true)),
            "{:?}",
            o.lines
        );
    }
}

#[test]
fn controller_loss_ends_in_a_safe_stop() {
    let s = Scenario {
        controller_stops_at_ns: Some(2_000 * MS),
        ..Scenario::default()
    };
    let o = run(&s, 12_000 * MS);
    assert!(o.safe_stop_jobs > 900, "the actuator took over");
    assert_eq!(
        o.final_speed_mps, 0.0,
        "the car came to a standstill and stays"
    );
    assert_eq!(o.tracker.collision_at_ns, None, "{:?}", o.lines);
}

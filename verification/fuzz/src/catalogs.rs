//! The task and message catalogs a fuzzed manifest is validated against.
//!
//! Owns: two registries, the ACC demo's real one (which `config/acc.toml` validates
//! against) and the one the manifest rule tests use (which
//! `runtime/src/manifest/testdata/good.toml` validates against). Both seeds only reach
//! the cross-reference rules of validation (task implementations, port types, readers
//! and writers) when their own catalog is used, and the two declare tasks of the same
//! names with different ports, so each input is checked against both. It must never
//! build a task: validation only reads the signatures.

use takt::task::{Ports, Registry, Task, TaskBuildError, TaskBuilder};

/// Both catalogs, built once per fuzzer process (building them allocates and is not
/// what is being fuzzed).
pub struct Catalogs {
    /// `takt_acc::registry()`: the demo deployment's tasks and messages.
    pub acc: Registry,
    /// The registry of `runtime/tests/manifest_rules.rs`.
    pub rules: Registry,
}

impl Catalogs {
    pub fn new() -> Self {
        Catalogs {
            acc: takt_acc::registry(),
            rules: rules_registry(),
        }
    }
}

impl Default for Catalogs {
    fn default() -> Self {
        Catalogs::new()
    }
}

takt::message! {
    #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct RadarTrack {
        pub range_m: f64,
        pub speed_mps: f64,
    }
}

takt::message! {
    #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct Objects {
        pub nearest_m: f64,
        pub count: u32,
        pub flags: u32,
    }
}

takt::message! {
    #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct Command {
        pub accel_mps2: f64,
    }
}

/// Validation never constructs tasks; a constructor that refuses keeps that visible.
fn not_built(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    Err(b.fail("fuzz targets never construct tasks"))
}

/// The same implementations and port signatures as the registry of
/// `runtime/tests/manifest_rules.rs`: the ones `good.toml` uses, plus the ones whose
/// signatures break a rule when a manifest names them, so the fuzzer can reach those
/// rules too.
fn rules_registry() -> Registry {
    let mut r = Registry::new();
    r.task(
        "radar",
        Ports::new().writes::<RadarTrack>("radar_track"),
        not_built,
    );
    r.task(
        "camera",
        Ports::new().writes::<Objects>("camera_objects"),
        not_built,
    );
    r.task(
        "perception",
        Ports::new()
            .reads::<RadarTrack>("radar_track")
            .reads::<Objects>("camera_objects")
            .writes::<Objects>("objects"),
        not_built,
    );
    r.task(
        "planner",
        Ports::new()
            .reads::<Objects>("objects")
            .writes::<Command>("command"),
        not_built,
    );
    r.task(
        "controller",
        Ports::new().reads::<Command>("command"),
        not_built,
    );
    r.task(
        "radar2",
        Ports::new().writes::<RadarTrack>("radar_track"),
        not_built,
    );
    r.task(
        "bad_reader",
        Ports::new().reads::<Command>("objects"),
        not_built,
    );
    r.task(
        "ghost",
        Ports::new().writes::<Objects>("ghost_topic"),
        not_built,
    );
    r.task(
        "logger",
        Ports::new().reads::<Objects>("objects"),
        not_built,
    );
    for name in ["tick_a", "tick_b", "slow"] {
        r.task(name, Ports::new(), not_built);
    }
    r
}
